"""`remediate plan` / `run --dry-run`: the audit, which must not change anything at all."""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_support import (
    OFFLINE_REPAIR,
    REBOOT_FIRST,
    REPLACE_ROOT,
    WORKSPACES_RECOVER,
    CliSandbox,
    cli_sandbox,
    root_states,
    run_cli,
)
from remediate.aws.clients import DryRunRefused
from remediate.cli.fleets import demo_spec

RUN_KEYS = {"run_id", "playbook", "dry_run", "started_at", "finished_at", "summary", "targets"}


@pytest.fixture(scope="module")
def demo_fleet() -> Iterator[CliSandbox]:
    """The demo's mixed fleet (every pitfall, WorkSpaces), shared: plans change nothing."""
    with pytest.MonkeyPatch.context() as monkeypatch, \
            cli_sandbox(monkeypatch, demo_spec(plain=2, workspaces=4)) as cli:
        yield cli


def fleet_state(cli: CliSandbox) -> tuple[Any, ...]:
    ids = [w.workspace_id for w in cli.fleet.workspaces]
    spaces = cli.sandbox.client("workspaces").describe_workspaces(WorkspaceIds=ids)
    volumes = cli.ec2.describe_volumes()["Volumes"]
    return (root_states(cli.ec2, cli.fleet.instance_ids()),
            sorted((w["WorkspaceId"], w["State"]) for w in spaces["Workspaces"]),
            sorted((v["VolumeId"], v["State"]) for v in volumes),
            len(cli.ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]),
            {v: cli.sandbox.channel_file_present(v) for v in
             (t.root_volume_id for t in cli.fleet.targets)})


# Playbook, its options, and the audit's exit code on the demo fleet: 2 when some target
# would be refused (a blocking finding, or a destructive one not accepted). WorkSpaces'
# restore runs only if the reboot does not help: that is judged when a target gets there.
AUDITS = [
    (OFFLINE_REPAIR, ["--rescue"], 2),
    (REBOOT_FIRST, [], 0),
    (REPLACE_ROOT, ["--accept", "root-replacement-data-loss"], 0),
    (REPLACE_ROOT, [], 2),
    (WORKSPACES_RECOVER, [], 0),
]


@pytest.mark.parametrize("command", [["plan"], ["run", "--dry-run"]], ids=["plan", "dry-run"])
@pytest.mark.parametrize(("playbook", "options", "expected"), AUDITS,
                         ids=[Path(p).stem + ("-accepted" if o and o[0] == "--accept" else "")
                              for p, o, _ in AUDITS])
def test_a_dry_run_sends_no_mutating_call(
        demo_fleet: CliSandbox, playbook: str, options: list[str], expected: int,
        command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    before = fleet_state(demo_fleet)
    demo_fleet.sandbox.reset_api_calls()
    if options == ["--rescue"]:
        options = demo_fleet.rescue_param

    code = run_cli(*command, playbook, *options)

    calls = Counter((c.operation, c.mutating) for c in demo_fleet.sandbox.api_calls)
    assert code == expected, capsys.readouterr().err
    assert sum(calls.values()) > 0, "the audit must look at the fleet"
    assert [op for (op, mutating) in calls if mutating] == []
    assert fleet_state(demo_fleet) == before


def test_plan_json_has_the_run_report_keys_and_what_each_target_would_get(
        demo_fleet: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("plan", OFFLINE_REPAIR, *demo_fleet.rescue_param, "--format", "json") == 2

    report = json.loads(capsys.readouterr().out)
    assert report.keys() >= RUN_KEYS and report["dry_run"] is True
    targets = {t["id"]: t for t in report["targets"]}
    assert sorted(targets) == sorted(demo_fleet.fleet.instance_ids())
    kinds = {t.instance_id: t.kind for t in demo_fleet.fleet.targets}
    for instance_id, target in targets.items():
        findings = {f["kind"] for f in target["findings"]}
        if kinds[instance_id] in ("stop_protected", "marketplace", "encrypted_bad_key",
                                  "instance_store", "spot_one_time"):
            assert target["status"] == "refused", (kinds[instance_id], target)
        else:
            assert target["status"] == "planned", (kinds[instance_id], target)
            assert [p["step"] for p in target["planned"]] == [
                "prepare_rescue", "backup", "stop", "detach", "attach", "repair", "release",
                "reattach", "restore", "verify", "confirm_backup"]
        if kinds[instance_id] == "stop_protected":
            assert "stop-protection" in findings
    assert report["summary"]["refused"] == 5
    assert report["summary"]["total"] == len(targets)


def test_plan_text_and_markdown(demo_fleet: CliSandbox,
                                capsys: pytest.CaptureFixture[str]) -> None:
    guarded = demo_fleet.fleet.instance_ids("stop_protected")[0]
    assert run_cli("plan", OFFLINE_REPAIR, *demo_fleet.rescue_param) == 2
    text = capsys.readouterr().out
    assert text.startswith(f"dry run of {OFFLINE_REPAIR} (")
    assert "): nothing was changed\n" in text.splitlines(keepends=True)[0]
    lines = text.splitlines()
    head = next(n for n, line in enumerate(lines) if line.endswith(f": {guarded}"))
    assert "] 1 target refused (findings: " in lines[head] and "stop-protection" in lines[head]
    assert lines[head + 1].startswith(f"      blocked by stop-protection: {guarded} has ")
    assert "API calls it would make (before merging into batches):" in text
    assert "estimated duration, paced to the API limits: " in text

    assert run_cli("plan", OFFLINE_REPAIR, *demo_fleet.rescue_param, "--format", "md") == 2
    markdown = capsys.readouterr().out
    assert markdown.startswith("# ")
    assert guarded in markdown and "stop-protection" in markdown


def test_plan_exits_0_when_nothing_is_blocking(demo_fleet: CliSandbox,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    plain = demo_fleet.fleet.instance_ids("plain")
    assert run_cli("plan", OFFLINE_REPAIR, *demo_fleet.rescue_param,
                   "--target-ids", ",".join(plain)) == 0
    assert "\n2 targets: 2 would be worked on, 0 refused; estimated " in capsys.readouterr().out


def test_the_clients_of_a_dry_run_refuse_mutating_calls_in_code(
        demo_fleet: CliSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second line of defence: even an action that slipped a StopInstances past the
    executor could not send it, because the dry run's clients refuse it."""
    from remediate import discovery

    target = demo_fleet.fleet.instance_ids("plain")[0]
    real = discovery.discover
    refused: list[str] = []

    def discover_then_try_to_stop(selector: Any, factory: Any, *args: Any, **kw: Any) -> Any:
        ec2 = factory.client("ec2", "us-east-1")
        with pytest.raises(DryRunRefused) as caught:
            ec2.stop_instances(InstanceIds=[target])
        refused.append(str(caught.value))
        return real(selector, factory, *args, **kw)

    monkeypatch.setattr(discovery, "discover", discover_then_try_to_stop)
    demo_fleet.sandbox.reset_api_calls()

    assert run_cli("plan", REBOOT_FIRST, "--target-ids", target) == 0

    assert refused == ["dry run: refusing ec2:StopInstances, which changes AWS resources"]
    assert "StopInstances" not in [c.operation for c in demo_fleet.sandbox.api_calls]
    assert root_states(demo_fleet.ec2, [target])[target].state == "running"


def test_plan_reports_a_missing_iam_permission_found_with_dry_run_true(
        demo_fleet: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    target = demo_fleet.fleet.instance_ids("plain")[0]
    demo_fleet.sandbox.reset_api_calls()
    demo_fleet.sandbox.fail("StopInstances", "UnauthorizedOperation",
                            "You are not authorized to perform this operation.")
    try:
        code = run_cli("plan", OFFLINE_REPAIR, *demo_fleet.rescue_param, "--target-ids", target)
    finally:
        demo_fleet.sandbox.clear_faults()
    out = capsys.readouterr().out
    assert code == 2
    assert ("IAM permissions (EC2 DryRun=True): 1 API denied\n"
            "  denied ec2:StopInstances in default/us-east-1: UnauthorizedOperation: You are "
            "not authorized to perform this operation.\n"
            "  unchecked ec2:AttachVolume in default/us-east-1: allowed only for a root volume "
            "the run has tagged remediate:root-of (before detaching it); see `remediate "
            "iam-policy`\n"
            "  unchecked ssm:SendCommand in default/us-east-1: ssm has no dry-run flag; see "
            "`remediate iam-policy`\n"
            "  allowed in default/us-east-1: ec2:CreateCapacityReservation, "
            "ec2:CreateSnapshot, ec2:CreateTags, ec2:DetachVolume, "
            "ec2:ModifyInstanceAttribute, ec2:RunInstances, ec2:StartInstances\n") in out
    # Asked once per API, with the target's own ids, and nothing mutated.
    assert demo_fleet.mutating_calls() == []
    probes = [c for c in demo_fleet.sandbox.api_calls if c.dry_run]
    assert sorted(c.operation for c in probes) == [
        "CreateCapacityReservation", "CreateSnapshot", "CreateTags", "DetachVolume",
        "ModifyInstanceAttribute", "RunInstances", "StartInstances", "StopInstances"]


def test_plan_json_lists_every_permission_check(
        demo_fleet: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    target = demo_fleet.fleet.instance_ids("plain")[0]
    assert run_cli("plan", REBOOT_FIRST, "--target-ids", target, "--format", "json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["permissions"] == [{
        "account": "default", "region": "us-east-1", "api": "ec2:RebootInstances",
        "iam_action": "ec2:RebootInstances", "outcome": "allowed",
        "detail": "DryRunOperation", "probed_with": f"default/us-east-1/{target}"}]


def test_a_step_behind_an_earlier_steps_output_is_planned_with_its_condition(
        demo_fleet: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    [space, *_] = sorted(w.workspace_id for w in demo_fleet.fleet.workspaces)
    assert run_cli("plan", WORKSPACES_RECOVER, "--target-ids", space) == 0
    out = capsys.readouterr().out
    assert ("      skip restore (workspaces.restore) [only if steps.reboot.outputs.healthy is "
            "false, known at run time]: would stop the target here: "
            "workspace-restore-data-loss not accepted (--accept workspace-restore-data-loss): "
            "restoring a WorkSpace loses up to 12 hours of user data (back to the last healthy "
            "snapshot)\n") in out

    assert run_cli("plan", WORKSPACES_RECOVER, "--target-ids", space, "--format", "json",
                   "--accept", "workspace-restore-data-loss",
                   "--accept", "workspace-rebuild-data-loss") == 0
    [target] = json.loads(capsys.readouterr().out)["targets"]
    restore = next(p for p in target["planned"] if p["step"] == "restore")
    assert restore == {"step": "restore", "action": "workspaces.restore",
                       "calls": ["workspaces:RestoreWorkspace"], "skip": None, "mutating": True,
                       "condition": "steps.reboot.outputs.healthy is false, known at run time"}


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_report_files_get_the_permissions_of_any_new_file(
        demo_fleet: CliSandbox, tmp_path: Path, umask: int, mode: int,
        capsys: pytest.CaptureFixture[str]) -> None:
    target = demo_fleet.fleet.instance_ids("plain")[0]
    kept = tmp_path / "kept.md"
    kept.write_text("an earlier report\n", encoding="utf-8")
    kept.chmod(0o600)
    previous = os.umask(umask)
    try:
        code = run_cli("plan", REBOOT_FIRST, "--target-ids", target,
                       "--report", f"json:{tmp_path}/new/plan.json", "--report", f"md:{kept}")
    finally:
        os.umask(previous)

    assert code == 0, capsys.readouterr().err
    assert stat.S_IMODE((tmp_path / "new" / "plan.json").stat().st_mode) == mode
    assert json.loads((tmp_path / "new" / "plan.json").read_text())["dry_run"] is True
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600  # a replaced report keeps its own
    assert kept.read_text(encoding="utf-8").startswith("# remediate dry run")


def test_the_demo_one_time_spot_instance_reads_as_one_time(
        demo_fleet: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    spot = demo_fleet.fleet.instance_ids("spot_one_time")[0]

    assert run_cli("plan", OFFLINE_REPAIR, *demo_fleet.rescue_param, "--target-ids", spot,
                   "--format", "json") == 2

    [target] = json.loads(capsys.readouterr().out)["targets"]
    assert target["facts"]["lifecycle"] == "spot"
    assert [f["kind"] for f in target["findings"] if f["kind"].startswith("spot-")] == [
        "spot-one-time"]
    assert target["refused"] == (
        f"blocked by spot-one-time: {spot} is a one-time Spot instance: StopInstances is "
        "refused for it (hint: use root-volume replacement, which works on a running instance)")


def test_an_audit_lists_only_the_findings_its_actions_risk(
        demo_fleet: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    def finding_kinds(playbook: str, *options: str) -> set[str]:
        run_cli("plan", playbook, *options, "--format", "json")
        report = json.loads(capsys.readouterr().out)
        return {f["kind"] for t in report["targets"] for f in t["findings"]}

    # A reboot stops nothing: no instance-store data or public IP is at risk.
    assert finding_kinds(REBOOT_FIRST) == set()
    assert finding_kinds(OFFLINE_REPAIR, *demo_fleet.rescue_param) >= {
        "instance-store-data-loss", "public-ip-will-change", "stop-protection",
        "spot-one-time", "kms-key-unusable", "marketplace-product-code"}

