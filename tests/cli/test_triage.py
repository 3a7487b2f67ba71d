"""`remediate triage` on a mixed sandbox fleet: classes, output, exit codes, pacing, tags."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from cli_support import CliSandbox, cli_sandbox, moving_clock, run_cli
from remediate.sandbox import FleetSpec, ThrottlePolicy

MIXED = FleetSpec(plain=2, spot_one_time=1, stop_protected=1, instance_store=1, marketplace=1,
                  healthy=2, boot_loop_other=1, black_screen=1, workspaces=4,
                  workspace_mix=("reboot", "restore", "rebuild", "stopped"), azs=1)
EXPECTED_CLASS = {
    "plain": "incident-boot-loop", "spot_one_time": "incident-boot-loop",
    "stop_protected": "incident-boot-loop", "instance_store": "incident-boot-loop",
    "marketplace": "incident-boot-loop", "boot_loop_other": "boot-loop",
    "black_screen": "impaired", "healthy": "healthy",
    # WorkSpaces, by what repairs them
    "reboot": "impaired", "restore": "impaired", "rebuild": "impaired", "stopped": "not-running",
}
TAG = "remediate:triage"


@pytest.fixture
def mixed(monkeypatch: pytest.MonkeyPatch) -> Iterator[CliSandbox]:
    """The mixed fleet (one sandbox per process: each test builds its own)."""
    with cli_sandbox(monkeypatch, MIXED) as cli:
        yield cli



def _triage(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run_cli("triage", *args)
    out, err = capsys.readouterr()
    return code, out, err


def _kinds(cli: CliSandbox) -> dict[str, str]:
    found = {t.instance_id: t.kind for t in cli.fleet.targets}
    found.update({w.workspace_id: w.fixed_by for w in cli.fleet.workspaces})
    return found


def _classes(out: str) -> dict[str, str]:
    return {t["id"]: t["class"] for t in json.loads(out)["targets"]}


def test_every_target_of_a_mixed_fleet_gets_its_class(mixed: CliSandbox,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    mixed.sandbox.reset_api_calls()
    code, out, err = _triage(capsys, "--output", "json")

    assert (code, err) == (2, "")  # broken targets found
    kinds = _kinds(mixed)
    assert {i: EXPECTED_CLASS[kinds[i]] for i in kinds} == _classes(out)
    assert json.loads(out)["classes"] == {"incident-boot-loop": 6, "boot-loop": 1,
                                          "impaired": 4, "not-running": 1, "healthy": 2}
    assert mixed.mutating_calls() == []  # triage changes nothing


def test_json_shape_and_routes(mixed: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _triage(capsys, "--output", "json", "--kind", "ec2-instance")
    targets = {t["id"]: t for t in json.loads(out)["targets"]}
    spot = targets[mixed.fleet.instance_ids("spot_one_time")[0]]
    assert spot == {
        "id": spot["id"], "kind": "ec2-instance", "region": "us-east-1", "account": "default",
        "class": "incident-boot-loop",
        "why": "status checks impaired; serial log: bug check 0x00000050 naming csagent.sys; "
               "screen: stop-code",
        "routes": [
            {"route": "reboot", "playbook": "playbooks/ec2-reboot-first.yaml",
             "verdict": "open", "reasons": []},
            {"route": "offline-repair", "playbook": "playbooks/ec2-offline-repair.yaml",
             "verdict": "blocked", "reasons": [
                 "spot-one-time: use root-volume replacement, which works on a running "
                 "instance"]},
            {"route": "replace-root", "playbook": "playbooks/ec2-replace-root-volume.yaml",
             "verdict": "needs --accept", "reasons": ["root-replacement-data-loss"]}]}
    healthy = targets[mixed.fleet.instance_ids("healthy")[0]]
    assert (healthy["class"], healthy["routes"]) == ("healthy", [])
    assert healthy["why"] == ("status checks ok; serial log: Windows is Ready to use; "
                              "screen: login")


def test_grouped_text(mixed: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = mixed.fleet
    boot_loop_other, black = fleet.instance_ids("boot_loop_other"), fleet.instance_ids(
        "black_screen")
    healthy = sorted(fleet.instance_ids("healthy"))
    code, out, _ = _triage(capsys, "--kind", "ec2-instance", "--target-ids",
                           ",".join([*boot_loop_other, *black, *healthy]))

    not_offline = ("offline-repair: not applicable (it deletes the channel file; this guest "
                   "crashes on something else)")
    routes = f"reboot: open; {not_offline}; replace-root: needs --accept " \
             "(root-replacement-data-loss)"
    assert code == 2
    assert out == "\n".join([
        "triage of 4 targets (4 instances): 2 need a repair",
        "",
        "boot-loop (1): boot-looping otherwise (a stop code, not the incident's)",
        f"  1 instance: {boot_loop_other[0]}",
        "    why: status checks impaired; serial log: bug check 0x0000007B; screen: stop-code",
        f"    routes: {routes}",
        "",
        "impaired (1): unreachable or impaired otherwise",
        f"  1 instance: {black[0]}",
        "    why: status checks impaired; serial log: nothing since boot; screen: black",
        f"    routes: {routes}",
        "",
        "healthy (2): healthy",
        f"  2 instances: {healthy[0]}, {healthy[1]}",
        "    why: status checks ok; serial log: Windows is Ready to use; screen: login",
    ]) + "\n"


def test_markdown(mixed: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    healthy = sorted(mixed.fleet.instance_ids("healthy"))
    code, out, _ = _triage(capsys, "--output", "markdown", "--target-ids", ",".join(healthy))
    assert code == 0  # nothing broken
    assert out == "\n".join([
        "# Triage of 2 targets (2 instances): 0 need a repair", "",
        "| class | targets |", "|---|---:|", "| healthy | 2 |", "",
        "## healthy: healthy", "",
        "| targets | why | routes |", "|---|---|---|",
        f"| 2: {healthy[0]}, {healthy[1]} | status checks ok; serial log: Windows is Ready to "
        "use; screen: login | - |"]) + "\n"


@pytest.mark.parametrize(("args", "error"), [
    (["--filter", "instance-type=m5.large"],
     "error: --filter instance-type=m5.large: instances and WorkSpaces have different "
     "filters; say which with --kind ec2-instance or --kind workspace\n"),
    (["--target-ids", "vol-0123456789abcdef0"],
     "error: --target-ids vol-0123456789abcdef0: not an instance (i-...) or WorkSpace "
     "(ws-...) id of the kinds triaged (ec2-instance, workspace)\n"),
    (["--kind", "workspace", "--target-ids", "i-0123456789abcdef0"],
     "error: --target-ids i-0123456789abcdef0: not an instance (i-...) or WorkSpace "
     "(ws-...) id of the kinds triaged (workspace)\n"),
    (["--tag", "Team=nobody"],
     "error: no targets matched kind ec2-instance or workspace, tags Team=nobody\n"),
    (["--target-ids", ""],
     "error: --target-ids has an empty value (''): give at least one id, or leave the "
     "option out to use the playbook's selector\n"),
])
def test_bad_input_is_one_line_and_exit_1(mixed: CliSandbox, capsys: pytest.CaptureFixture[str],
                                          args: list[str], error: str) -> None:
    code, out, err = _triage(capsys, *args)
    assert (code, out, err) == (1, "", error)
    assert mixed.mutating_calls() == []


def test_an_unknown_output_is_a_usage_error(mixed: CliSandbox,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _triage(capsys, "--output", "yaml")
    assert code == 1
    assert "Invalid value for '--output': 'yaml' is not one of 'text', 'json', 'markdown'." \
        in err


def test_tags_each_target_with_its_class_once(mixed: CliSandbox,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _triage(capsys, "--tag-classes")
    assert (code, err) == (2, "")
    ec2, ws = mixed.sandbox.client("ec2"), mixed.sandbox.client("workspaces")
    kinds = _kinds(mixed)
    for target in mixed.fleet.targets:
        tags = ec2.describe_tags(Filters=[{"Name": "resource-id",
                                           "Values": [target.instance_id]}])["Tags"]
        assert {t["Key"]: t["Value"] for t in tags}[TAG] == EXPECTED_CLASS[target.kind]
    for workspace in mixed.fleet.workspaces:
        tags = ws.describe_tags(ResourceId=workspace.workspace_id)["TagList"]
        assert {t["Key"]: t["Value"] for t in tags}[TAG] == EXPECTED_CLASS[kinds[
            workspace.workspace_id]]
    # `run --tag remediate:triage=...` selects a class: the discovery `run` uses.
    code, out, _ = _triage(capsys, "--kind", "ec2-instance", "--output", "json", "--tag",
                           f"{TAG}=boot-loop")
    assert list(_classes(out)) == mixed.fleet.instance_ids("boot_loop_other")

    # Again: the EC2 tags already say the class, so no EC2 CreateTags call is made.
    mixed.sandbox.reset_api_calls()
    _triage(capsys, "--tag-classes", "--kind", "ec2-instance")
    assert mixed.mutating_calls() == []


def test_paced_within_ec2_buckets(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """150 instances: 150 GetConsoleScreenshot calls against a bucket of 100 refilled at 20
    a second take at least (150 - 100) / 20 = 2.5 s, and AWS throttles none of them."""
    with cli_sandbox(monkeypatch, FleetSpec(plain=150, azs=1)) as cli:
        cli.sandbox.set_throttle(ThrottlePolicy(ec2_defaults=True))
        code, out, _ = _triage(capsys, "--kind", "ec2-instance", "--output", "json")
        throttled = cli.sandbox.api_call_counts(throttled=True)
        took = cli.clock.now()
    assert code == 2
    assert set(_classes(out).values()) == {"incident-boot-loop"}
    assert throttled == {}
    assert took >= 2.5


def test_a_throttled_read_is_paced_down_and_sent_again(mixed: CliSandbox,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    mixed.sandbox.fail("GetConsoleScreenshot", "RequestLimitExceeded", "Request limit exceeded.",
                       times=3)
    code, out, _ = _triage(capsys, "--output", "json")
    assert code == 2
    kinds = _kinds(mixed)
    assert _classes(out) == {i: EXPECTED_CLASS[kinds[i]] for i in kinds}
    assert mixed.sandbox.api_call_counts()[("ec2", "GetConsoleScreenshot")] == \
        len(mixed.fleet.targets) + 3


def test_a_read_that_fails_leaves_the_target_unread(mixed: CliSandbox,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    mixed.sandbox.fail("GetConsoleScreenshot", "UnauthorizedOperation",
                       "You are not authorized to perform this operation.")
    code, out, _ = _triage(capsys, "--output", "json", "--kind", "ec2-instance")
    targets = json.loads(out)["targets"]
    assert code == 2
    assert {(t["class"], t["why"], tuple(t["routes"])) for t in targets} == {
        ("unread", "GetConsoleScreenshot: UnauthorizedOperation: You are not authorized to "
                   "perform this operation.", ())}


def test_on_a_moving_clock(monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    """Reading and tagging on a clock that moves between two readings."""
    with cli_sandbox(monkeypatch, MIXED, clock=moving_clock()) as cli:
        code, out, _ = _triage(capsys, "--output", "json", "--tag-classes")
        kinds: dict[str, Any] = _kinds(cli)
        tags = cli.ec2.describe_tags(Filters=[{"Name": "key", "Values": [TAG]}])["Tags"]
    assert code == 2
    assert _classes(out) == {i: EXPECTED_CLASS[kinds[i]] for i in kinds}
    assert {t["ResourceId"]: t["Value"] for t in tags} == {
        i: EXPECTED_CLASS[kinds[i]] for i in kinds if i.startswith("i-")}


def test_a_transient_error_is_sent_again(mixed: CliSandbox,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    mixed.sandbox.fail("GetConsoleOutput", "InternalError", "An internal error has occurred.",
                       times=2)
    code, out, _ = _triage(capsys, "--output", "json", "--kind", "ec2-instance")
    kinds = _kinds(mixed)
    assert code == 2
    assert _classes(out) == {i: EXPECTED_CLASS[kinds[i]] for i in kinds if i.startswith("i-")}


def test_each_instance_type_is_read_once(mixed: CliSandbox, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Instances described 3 a call (10 in 4 answers) still ask DescribeInstanceTypes once
    per type at most (m5.large, m5d.large: 1 or 2 calls, as the answers bring them; it was
    one per answer), and each instance gets its type's instance store."""
    from remediate.triage import reading

    monkeypatch.setattr(reading, "INSTANCES_PER_DESCRIBE", 3)
    mixed.sandbox.reset_api_calls()
    _, out, _ = _triage(capsys, "--output", "json", "--kind", "ec2-instance")
    calls = mixed.sandbox.api_call_counts()
    assert calls[("ec2", "DescribeInstanceTypes")] in (1, 2)
    routes = {t["id"]: {r["route"]: (r["verdict"], r["reasons"]) for r in t["routes"]}
              for t in json.loads(out)["targets"]}
    store = mixed.fleet.instance_ids("instance_store")[0]
    plain = mixed.fleet.instance_ids("plain")[0]
    assert routes[store]["offline-repair"] == ("needs --accept", ["instance-store-data-loss"])
    assert routes[plain]["offline-repair"] == ("open", [])
