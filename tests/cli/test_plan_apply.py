"""`remediate plan --out FILE` and `remediate run --plan FILE`: approve a plan, apply exactly it.

The plan is what an incident commander signs; the run must not do more (a target
tagged since, a playbook edited since, a data loss accepted on the command line)
or do it to a machine that is no longer what the plan described.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import shutil
import socket
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from cli_support import (
    OFFLINE_REPAIR,
    REGION,
    WORKSPACES_RECOVER,
    CliSandbox,
    backups,
    cli_sandbox,
    exit_err_calls,
    json_file,
    misplaced_roots,
    repair_problems,
    rescue_instances,
    root_states,
    run_cli,
)
from remediate import __version__
from remediate.journal import Journal
from remediate.sandbox import FleetSpec

INCIDENT = "crowdstrike-2024-07-19"
REPAIR_SCRIPT = "scripts/crowdstrike-offline-repair.ps1"


@pytest.fixture
def fleet(monkeypatch: pytest.MonkeyPatch) -> Iterator[CliSandbox]:
    with cli_sandbox(monkeypatch, FleetSpec(plain=3, stop_protected=1, azs=1)) as cli:
        yield cli


def _plan(cli: CliSandbox, out: Path, *options: str, playbook: str = OFFLINE_REPAIR) -> int:
    return run_cli("plan", playbook, *cli.rescue_param, "--out", str(out), *options)


def _untouched(cli: CliSandbox, instance_id: str) -> bool:
    """No call that changes anything named it, and it has no backup."""
    mutating = [c.operation for c in cli.sandbox.api_calls
                if c.mutating and not c.dry_run and c.names(instance_id)]
    return mutating == [] and backups(cli.ec2, instance_id) == []


def _apply(cli: CliSandbox, tmp_path: Path,
           capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`run --plan` of tmp_path/plan.json, with a journal and a JSON report there: its exit
    code and stderr (API calls counted from here)."""
    cli.sandbox.reset_api_calls()
    capsys.readouterr()
    code = run_cli("run", "--plan", str(tmp_path / "plan.json"), "--yes", "--no-progress",
                   "--journal", str(tmp_path / "j.sqlite"),
                   "--report", f"json:{tmp_path}/run.json")
    return code, capsys.readouterr().err


def _wait(cli: CliSandbox, seconds: float = 900) -> None:
    """Let the sandbox's state changes (stop, detach, attach) finish."""
    cli.clock.advance(seconds)


def test_plan_out_saves_the_targets_facts_playbook_and_who_planned(
        fleet: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet.sandbox.reset_api_calls()
    out = tmp_path / "approved" / "plan.json"

    code = _plan(fleet, out, "--limit", "10")

    err = capsys.readouterr().err
    assert code == 2, err  # the stop-protected instance is refused, as without --out
    assert fleet.mutating_calls() == []
    assert err.splitlines()[-1] == (
        f"plan saved to {out}: 3 target(s) approved, 1 not (refused or skipped); apply it with "
        f"`remediate run --plan {out}`")
    plan = json_file(out)
    text = Path(OFFLINE_REPAIR).read_text(encoding="utf-8")
    assert (plan["format"], plan["format_version"], plan["remediate_version"]) == (
        "remediate-plan", 1, __version__)
    assert plan["planned_by"] == f"{getpass.getuser()}@{socket.gethostname()}"
    assert plan["planned_at"].endswith("Z")
    assert datetime.fromisoformat(plan["planned_at"]).utcoffset().total_seconds() == 0
    script = Path(OFFLINE_REPAIR).parent / REPAIR_SCRIPT
    assert plan["playbook"] == {
        "path": OFFLINE_REPAIR, "folder": str(Path(OFFLINE_REPAIR).parent),
        "sha256": hashlib.sha256(text.encode()).hexdigest(), "text": text,
        "scripts": {REPAIR_SCRIPT: hashlib.sha256(script.read_bytes()).hexdigest()}}
    rescue_ami = fleet.fleet.regions[REGION].rescue_windows_ami
    assert plan["params"]["rescue_image_id"] == rescue_ami
    assert plan["params"]["rescue_per_az"] == 8  # bound: defaults too
    assert plan["accepted"] == [] and plan["selecting_tags"] == ["incident"]
    assert plan["selection"]["limit"] == 10
    assert plan["summary"] == {"approved": 3, "not_approved": 1}
    assert sorted(t["id"] for t in plan["targets"]) == sorted(fleet.fleet.instance_ids())
    before = root_states(fleet.ec2, fleet.fleet.instance_ids())
    guarded = fleet.fleet.instance_ids("stop_protected")[0]
    for target in plan["targets"]:
        instance_id = target["id"]
        assert (target["kind"], target["region"], target["account"]) == (
            "ec2-instance", REGION, "default")
        described = fleet.ec2.describe_instances(InstanceIds=[instance_id])[
            "Reservations"][0]["Instances"][0]
        assert target["pinned"] == {
            "state": "running", "root_volume_id": before[instance_id].volume_id,
            "instance_type": described["InstanceType"], "tag:incident": INCIDENT}
        assert target["facts"]["root_device_name"] == before[instance_id].device
        assert target["approved"] is (target["status"] == "planned")
        if instance_id == guarded:
            assert target["status"] == "refused" and "stop-protection" in target["reason"]
            assert [f["kind"] for f in target["findings"]] == [
                "stop-protection", "public-ip-will-change"]
            assert target["findings"][0]["severity"] == "block"


def test_run_plan_runs_exactly_the_approved_targets_with_the_plans_playbook(
        fleet: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    playbooks = tmp_path / "playbooks"
    shutil.copytree(Path(OFFLINE_REPAIR).parent, playbooks)
    playbook = playbooks / "ec2-offline-repair.yaml"
    approved_text = playbook.read_text(encoding="utf-8")
    plain = sorted(fleet.fleet.instance_ids("plain"))
    guarded = fleet.fleet.instance_ids("stop_protected")[0]
    approved = plain[:2]
    assert _plan(fleet, tmp_path / "plan.json", "--target-ids", ",".join([*approved, guarded]),
                 playbook=str(playbook)) == 2
    # After the approval: the file is edited, and every plain instance matches the selector.
    playbook.write_text(approved_text.replace("rescue_per_az", "rescue_per_zone"), "utf-8")
    before = root_states(fleet.ec2, fleet.fleet.instance_ids())

    code, err = _apply(fleet, tmp_path, capsys)

    assert code == 0, err
    lines = err.splitlines()
    assert lines[0] == (f"note: {tmp_path}/plan.json: 1 target(s) the plan refused or skipped "
                        "are not run (plan again once they are fixed)")
    assert lines[1].startswith(f"applying plan {tmp_path}/plan.json ("
                               f"{getpass.getuser()}@{socket.gethostname()}, ")
    assert lines[1].endswith("): 2 approved target(s)")
    for instance_id in approved:
        assert repair_problems(fleet.ec2, before[instance_id],
                               fleet.sandbox.channel_file_present) == [], instance_id
    # Not in the plan (never selected, or refused by it): never touched.
    for instance_id in (plain[2], guarded):
        assert _untouched(fleet, instance_id), instance_id
        assert root_states(fleet.ec2, [instance_id])[instance_id] == before[instance_id]
    assert fleet.sandbox.channel_file_present(before[plain[2]].volume_id)
    assert rescue_instances(fleet.ec2) == [] and misplaced_roots(fleet.ec2, before) == []
    assert sorted(t["id"] for t in json_file(tmp_path / "run.json")["targets"]) == approved
    # The plan's copy of the playbook ran (the journal keeps it), not the edited file, with
    # the plan's parameter values (--param rescue_image_id was given to `plan` only).
    run = Journal(tmp_path / "j.sqlite").run()
    assert run.playbook_text == approved_text
    assert run.params == json_file(tmp_path / "plan.json")["params"]
    assert run.params["rescue_image_id"] == fleet.fleet.regions[REGION].rescue_windows_ami


def _swap_root_volume(cli: CliSandbox, instance_id: str) -> str:
    """Someone else's repair: a new root volume on the instance, running again."""
    ec2 = cli.ec2
    state = root_states(ec2, [instance_id])[instance_id]
    ec2.stop_instances(InstanceIds=[instance_id])
    _wait(cli)
    ec2.detach_volume(VolumeId=state.volume_id)
    _wait(cli)
    zone = ec2.describe_volumes(VolumeIds=[state.volume_id])["Volumes"][0]["AvailabilityZone"]
    volume = ec2.create_volume(AvailabilityZone=zone, Size=30)["VolumeId"]
    _wait(cli)
    ec2.attach_volume(VolumeId=volume, InstanceId=instance_id, Device=state.device)
    _wait(cli)
    ec2.start_instances(InstanceIds=[instance_id])
    _wait(cli)
    return str(volume)


def test_a_target_changed_since_the_plan_is_refused_with_the_difference(
        fleet: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    swapped, stopped, untagged = sorted(fleet.fleet.instance_ids("plain"))
    assert _plan(fleet, tmp_path / "plan.json", "--target-ids",
                 ",".join([swapped, stopped, untagged])) == 0
    old_root = root_states(fleet.ec2, [swapped])[swapped].volume_id
    new_root = _swap_root_volume(fleet, swapped)
    fleet.ec2.stop_instances(InstanceIds=[stopped])
    fleet.ec2.delete_tags(Resources=[untagged], Tags=[{"Key": "incident"}])
    _wait(fleet)
    before = root_states(fleet.ec2, [swapped, stopped, untagged])

    code, err = _apply(fleet, tmp_path, capsys)

    assert code == 2, err
    again = "(plan again to approve it as it is now)"
    expected = {
        swapped: f"{swapped}: root volume {old_root} -> {new_root}",
        stopped: f"{stopped}: state running -> stopped",
        untagged: f"{untagged}: tag incident {INCIDENT} -> (none)",
    }
    for instance_id, change in expected.items():
        assert (f"{instance_id} ({REGION}): refused: changed since the plan was approved: "
                f"{change} {again}") in err.splitlines(), err
        assert _untouched(fleet, instance_id), instance_id
    assert root_states(fleet.ec2, [swapped, stopped, untagged]) == before
    report = json_file(tmp_path / "run.json")
    assert {t["id"]: (t["status"], t["error"]) for t in report["targets"]} == {
        i: ("refused", f"changed since the plan was approved: {change} {again}")
        for i, change in expected.items()}


def _plan_file(tmp_path: Path, edit: Any) -> Path:
    """A plan file as `plan --out` writes it, then ``edit``ed (a dict -> dict function)."""
    text = Path(OFFLINE_REPAIR).read_text(encoding="utf-8")
    plan = {"format": "remediate-plan", "format_version": 1, "remediate_version": __version__,
            "planned_by": "sre@laptop", "planned_at": "2024-07-19T05:30:00Z",
            "plan_run_id": "r20240719-053000-a1b2c3",
            "playbook": {"path": OFFLINE_REPAIR, "folder": str(Path(OFFLINE_REPAIR).parent),
                         "sha256": hashlib.sha256(text.encode()).hexdigest(), "text": text,
                         "scripts": {}},
            "params": {}, "accepted": [], "profile": None, "selection": {},
            "selecting_tags": ["incident"], "summary": {"approved": 1, "not_approved": 0},
            "targets": [{"kind": "ec2-instance", "id": "i-0123456789abcdef0",
                         "region": REGION, "account": "default", "status": "planned",
                         "approved": True, "reason": None, "pinned": {"state": "running"},
                         "facts": {}, "findings": []}]}
    path = tmp_path / "plan.json"
    edited = edit(plan)
    path.write_text(edited if isinstance(edited, str) else json.dumps(edited, indent=2),
                    encoding="utf-8")
    return path


def _with(plan: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**plan, **changes}


HINT = "plan again: remediate plan PLAYBOOK --out FILE"
BAD_PLANS = {
    "not-json": (lambda p: '{"format": "remediate-plan",\n  "format_version": 1\n  }}',
                 "{path}:3:4: not valid JSON (Extra data); a plan is written by `remediate "
                 "plan PLAYBOOK --out {path}`"),
    "not-a-plan": (lambda p: _with(p, format="terraform"),
                   f"{{path}}: not a remediate plan (expected a JSON object with \"format\": "
                   f"\"remediate-plan\"); {HINT}"),
    "other-version": (lambda p: _with(p, format_version=2),
                      f"{{path}}: plan format version 2; this remediate ({__version__}) "
                      f"applies version 1 only; {HINT} with this remediate"),
    "edited-playbook": (lambda p: _with(p, playbook={**p["playbook"], "text": "version: 1\n"}),
                        "{path}: playbook.text does not match playbook.sha256 (the plan was "
                        f"edited after it was written); {HINT}"),
    "target-without-id": (lambda p: _with(p, targets=[
                              {k: v for k, v in p["targets"][0].items() if k != "id"}]),
                          f"{{path}}: targets[0].id: expected a target id, found nothing; "
                          f"{HINT}"),
    "unknown-kind": (lambda p: _with(p, targets=[{**p["targets"][0], "kind": "lambda"}]),
                     f"{{path}}: targets[0].kind: expected one of ec2-instance, workspace, "
                     f"found \"lambda\"; {HINT}"),
    "nothing-approved": (lambda p: _with(p, targets=[{**p["targets"][0], "status": "refused"}]),
                         "--plan {path}: the plan approves no target (each was refused or "
                         "skipped when it was planned): nothing to run"),
}


@pytest.mark.parametrize("name", list(BAD_PLANS))
def test_a_plan_file_that_cannot_be_applied_is_one_line_exit_1_and_no_aws_call(
        fleet: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        name: str) -> None:
    edit, message = BAD_PLANS[name]
    path = _plan_file(tmp_path, edit)

    assert exit_err_calls(fleet, capsys, "run", "--plan", str(path), "--yes",
                          "--journal", str(tmp_path / "j.sqlite")) == (
        1, f"error: {message.format(path=path)}\n", 0)


def test_a_missing_plan_file_is_one_line(fleet: CliSandbox, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_err_calls(fleet, capsys, "run", "--plan", str(tmp_path / "nope.json")) == (
        1, f"error: --plan {tmp_path}/nope.json: cannot read it (No such file or directory)\n",
        0)


@pytest.mark.parametrize(("options", "message"), [
    (["--accept", "instance-store-data-loss"], "--accept would change what was approved"),
    (["--param", "rescue_per_az=2"], "--param would change what was approved"),
    (["--tag", "team=web", "--limit", "1"], "--tag, --limit would change what was approved"),
])
def test_run_plan_refuses_options_that_change_what_was_approved(
        fleet: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        options: list[str], message: str) -> None:
    path = _plan_file(tmp_path, lambda p: p)

    assert exit_err_calls(fleet, capsys, "run", "--plan", str(path), "--yes", *options) == (
        1, f"error: --plan {path} runs the approved plan as it is: {message}; plan again "
           "with them (`remediate plan PLAYBOOK ... --out FILE`)\n", 0)


@pytest.mark.parametrize(("args", "message"), [
    (["run", "--plan", "p.json", "--retry-failed", "r.json"],
     "--plan and --retry-failed each choose the targets: give one"),
    (["run", "--plan", "p.json", "--engine", "stepfunctions"],
     "--plan p.json: approved plans run on the local engine only (leave out --engine "
     "stepfunctions)"),
])
def test_run_without_a_playbook_or_with_two_selections_is_one_line(
        fleet: CliSandbox, capsys: pytest.CaptureFixture[str], args: list[str],
        message: str) -> None:
    assert exit_err_calls(fleet, capsys, *args) == (1, f"error: {message}\n", 0)


def test_a_playbook_given_with_the_plan_must_be_the_approved_one(
        fleet: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _plan_file(tmp_path, lambda p: p)
    other = tmp_path / "edited.yaml"
    other.write_text(Path(OFFLINE_REPAIR).read_text(encoding="utf-8") + "# edited\n", "utf-8")
    sha = json_file(path)["playbook"]["sha256"]

    assert exit_err_calls(fleet, capsys, "run", str(other), "--plan", str(path), "--yes") == (
        1, f"error: {other} is not the playbook {path} approved (sha256 {sha[:12]}...): leave "
           "PLAYBOOK out to run the plan's copy, or plan again\n", 0)


def test_a_script_changed_since_the_plan_is_refused_before_any_aws_call(
        fleet: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The playbook's text is not all that runs: its repair script is sent to the rescue
    instances, and it too must be the one approved."""
    playbooks = tmp_path / "playbooks"
    shutil.copytree(Path(OFFLINE_REPAIR).parent, playbooks)
    plain = fleet.fleet.instance_ids("plain")[0]
    assert _plan(fleet, tmp_path / "plan.json", "--target-ids", plain,
                 playbook=str(playbooks / "ec2-offline-repair.yaml")) == 0
    script = playbooks / REPAIR_SCRIPT
    then = hashlib.sha256(script.read_bytes()).hexdigest()
    script.write_text(script.read_text("utf-8") + "Remove-Item C:\\ -Recurse\n", "utf-8")
    now = hashlib.sha256(script.read_bytes()).hexdigest()

    assert exit_err_calls(fleet, capsys, "run", "--plan", str(tmp_path / "plan.json"),
                          "--yes") == (
        1, f"error: --plan {tmp_path}/plan.json: script {REPAIR_SCRIPT} changed since the plan "
           f"was approved (sha256 {then[:12]}... then, {now[:12]}... now): plan again to "
           "approve it\n", 0)


def test_a_workspace_that_changed_state_since_the_plan_is_refused_and_the_other_recovered(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    spec = FleetSpec(plain=0, workspaces=2, workspace_mix=("reboot",), azs=1)
    with cli_sandbox(monkeypatch, spec) as cli:
        rebooted, planned = sorted(w.workspace_id for w in cli.fleet.workspaces)
        spaces = cli.sandbox.client("workspaces")
        assert run_cli("plan", WORKSPACES_RECOVER, "--out", str(tmp_path / "plan.json")) == 0
        plan = json_file(tmp_path / "plan.json")
        bundles = {w["WorkspaceId"]: w["BundleId"] for w in spaces.describe_workspaces(
            WorkspaceIds=[rebooted, planned])["Workspaces"]}
        assert {t["id"]: t["pinned"] for t in plan["targets"]} == {
            i: {"state": "UNHEALTHY", "bundle_id": bundles[i], "tag:incident": INCIDENT}
            for i in (rebooted, planned)}
        # Someone else's reboot fixed it in the meantime.
        spaces.reboot_workspaces(RebootWorkspaceRequests=[{"WorkspaceId": rebooted}])
        _wait(cli)

        code, err = _apply(cli, tmp_path, capsys)

        assert code == 2, err
        assert (f"{rebooted} ({REGION}): refused: changed since the plan was approved: "
                f"{rebooted}: state UNHEALTHY -> AVAILABLE (plan again to approve it as it "
                "is now)") in err.splitlines(), err
        states = {w["WorkspaceId"]: w["State"] for w in spaces.describe_workspaces(
            WorkspaceIds=[rebooted, planned])["Workspaces"]}
        assert states == {rebooted: "AVAILABLE", planned: "AVAILABLE"}
        assert [c.operation for c in cli.sandbox.api_calls
                if c.mutating and c.names(rebooted)] == []
        assert "RebootWorkspaces" in [c.operation for c in cli.sandbox.api_calls
                                      if c.names(planned)]


@pytest.mark.parametrize(("out", "message"), [
    ("-", "--out -: the audit itself is printed on stdout; give the plan a file"),
    ("{tmp}/audit.json", "--out {tmp}/audit.json is the file of --report json:{tmp}/audit.json: "
                         "give the plan a file of its own"),
])
def test_plan_out_needs_a_file_of_its_own(
        fleet: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str], out: str,
        message: str) -> None:
    assert exit_err_calls(fleet, capsys, "plan", OFFLINE_REPAIR, "--out",
                          out.format(tmp=tmp_path), "--report",
                          f"json:{tmp_path}/audit.json") == (
        1, f"error: {message.format(tmp=tmp_path)}\n", 0)


def test_a_plan_of_another_remediate_version_is_applied_with_a_note(
        fleet: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The format version decides what can be read; the tool's version is only said."""
    plain = fleet.fleet.instance_ids("plain")[0]
    assert _plan(fleet, tmp_path / "plan.json", "--target-ids", plain) == 0
    plan = json_file(tmp_path / "plan.json")
    (tmp_path / "plan.json").write_text(json.dumps({**plan, "remediate_version": "0.0.9"}),
                                        encoding="utf-8")

    code, err = _apply(fleet, tmp_path, capsys)

    assert code == 0, err
    assert err.splitlines()[0] == (f"note: {tmp_path}/plan.json was planned with remediate "
                                   f"0.0.9; this is remediate {__version__}")
    assert json_file(tmp_path / "run.json")["summary"]["succeeded"] == 1
