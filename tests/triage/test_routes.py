"""Routes per target: `plan`'s findings, judged against each route's actions."""

from __future__ import annotations

from typing import Any

from remediate.triage.routes import routes_for


def _verdicts(kind: str, triage_class: str, **facts: Any) -> dict[str, str]:
    return {r.route: r.text() for r in routes_for(kind, triage_class, {"id": "i-1", **facts})}


REPLACE = "needs --accept (root-replacement-data-loss)"


def test_an_ordinary_incident_instance_may_take_every_route() -> None:
    assert _verdicts("ec2-instance", "incident-boot-loop", platform="windows") == {
        "reboot": "open", "offline-repair": "open", "replace-root": REPLACE}


def test_what_blocks_the_offline_repair_leaves_the_other_routes() -> None:
    one_time = _verdicts("ec2-instance", "incident-boot-loop", lifecycle="spot",
                         spot_request_type="one-time")
    assert one_time["offline-repair"] == (
        "blocked (spot-one-time: use root-volume replacement, which works on a running "
        "instance)")
    assert (one_time["reboot"], one_time["replace-root"]) == ("open", REPLACE)
    protected = _verdicts("ec2-instance", "incident-boot-loop", stop_protection=True)
    assert protected["offline-repair"].startswith("blocked (stop-protection: ")
    marketplace = _verdicts("ec2-instance", "incident-boot-loop", product_codes=["abc"])
    assert marketplace["offline-repair"] == (
        "blocked (marketplace-product-code: use root-volume replacement instead)")
    store = _verdicts("ec2-instance", "incident-boot-loop", instance_store=True,
                      instance_type="m5d.large")
    assert store["offline-repair"] == "needs --accept (instance-store-data-loss)"
    assert store["replace-root"] == REPLACE


def test_the_channel_file_repair_is_only_for_the_incident() -> None:
    assert _verdicts("ec2-instance", "boot-loop")["offline-repair"] == (
        "not applicable (it deletes the channel file; this guest crashes on something else)")


def test_workspace_routes_follow_its_state() -> None:
    assert _verdicts("workspace", "impaired", state="ERROR") == {
        "reboot": "not applicable (not from state ERROR)",
        "restore": "needs --accept (workspace-restore-data-loss)",
        "rebuild": "needs --accept (workspace-rebuild-data-loss)"}
