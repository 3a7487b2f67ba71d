"""Every built-in playbook, end to end on the sandbox fleet, through `run`'s own code path.

Asserts the end state of every target in AWS (the sandbox), not what the tool
says about it: running, status checks ok, the original root volume at the
original device, DeleteOnTermination as before, the channel file gone, the
backup snapshot present and tagged, no rescue instance left; and that targets
with a finding are refused unless the operator accepted it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from remediate.cli.launch import Environment, RunRequest, execute
from remediate.cli.options import TargetArgs
from remediate.clock import VirtualClock
from remediate.sandbox import Fleet, FleetSpec, Sandbox

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(clock=VirtualClock()) as sb:
        yield sb


def run(sb: Sandbox, playbook: str, tmp_path: Path, **kw: Any) -> int:
    env = Environment(clock=sb.clock, session=sb.boto3_session(), interactive=False)
    request = RunRequest(str(PLAYBOOKS / playbook), journal_path=str(tmp_path / "j.sqlite"),
                         progress=False, yes=True, **kw)
    return execute(request, env)


def instance(sb: Sandbox, instance_id: str, region: str = "us-east-1") -> dict[str, Any]:
    found = sb.client("ec2", region).describe_instances(InstanceIds=[instance_id])
    result: dict[str, Any] = found["Reservations"][0]["Instances"][0]
    return result


def healthy(sb: Sandbox, instance_id: str, region: str = "us-east-1") -> bool:
    (status,) = sb.client("ec2", region).describe_instance_status(
        InstanceIds=[instance_id], IncludeAllInstances=True)["InstanceStatuses"]
    return (status["InstanceState"]["Name"], status["InstanceStatus"]["Status"],
            status["SystemStatus"]["Status"]) == ("running", "ok", "ok")


def root_mapping(sb: Sandbox, instance_id: str, region: str = "us-east-1") -> dict[str, Any]:
    found = instance(sb, instance_id, region)
    (mapping,) = [m for m in found["BlockDeviceMappings"]
                  if m["DeviceName"] == found["RootDeviceName"]]
    return mapping


def rescue_instances(sb: Sandbox) -> list[str]:
    found = sb.client("ec2").describe_instances(Filters=[
        {"Name": "tag:remediate:role", "Values": ["rescue"]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])
    return [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]]


def test_offline_repair(sandbox: Sandbox, tmp_path: Path) -> None:
    fleet: Fleet = sandbox.build_fleet(FleetSpec(plain=5, instance_store=1, stop_protected=1,
                                                 azs=2))
    before = {t.instance_id: root_mapping(sandbox, t.instance_id) for t in fleet.targets}
    rescue = fleet.regions["us-east-1"].rescue_windows_ami
    code = run(sandbox, "ec2-offline-repair.yaml", tmp_path,
               params={"rescue_image_id": rescue})
    assert code == 2  # the instance-store and stop-protected targets are refused
    # Stopping needs DisableApiStop, which AWS reads one instance a call.
    assert sandbox.api_call_counts()[("ec2", "DescribeInstanceAttribute")] == 7
    for target in fleet.by_kind("plain"):
        mapping = root_mapping(sandbox, target.instance_id)
        assert healthy(sandbox, target.instance_id)
        assert mapping["Ebs"]["VolumeId"] == target.root_volume_id
        assert mapping["DeviceName"] == target.root_device_name
        assert mapping["Ebs"]["DeleteOnTermination"] == \
            before[target.instance_id]["Ebs"]["DeleteOnTermination"]
        assert not sandbox.channel_file_present(target.root_volume_id)
        snapshots = sandbox.client("ec2").describe_snapshots(OwnerIds=["self"], Filters=[
            {"Name": "volume-id", "Values": [target.root_volume_id]},
            {"Name": "tag:remediate:purpose", "Values": ["backup"]}])["Snapshots"]
        assert len(snapshots) == 1
        tags = {t["Key"]: t["Value"] for t in snapshots[0]["Tags"]}
        assert tags["remediate:target"].endswith(target.instance_id)
    for kind in ("instance_store", "stop_protected"):
        (target,) = fleet.by_kind(kind)
        assert not healthy(sandbox, target.instance_id)  # untouched: still broken, running
        assert instance(sandbox, target.instance_id)["State"]["Name"] == "running"
        assert sandbox.channel_file_present(target.root_volume_id)
        assert sandbox.instance_store_intact(target.instance_id) or kind != "instance_store"
    assert rescue_instances(sandbox) == []


def test_offline_repair_over_two_regions_with_the_default_rescue_image(
        sandbox: Sandbox, tmp_path: Path) -> None:
    regions = ("us-east-1", "eu-west-1")
    fleet = sandbox.build_fleet(FleetSpec(plain=6, azs=2, regions=regions))

    code = run(sandbox, "ec2-offline-repair.yaml", tmp_path,
               targets=TargetArgs(regions=regions))

    assert code == 0
    assert {t.region for t in fleet.targets} == set(regions)
    for target in fleet.targets:
        mapping = root_mapping(sandbox, target.instance_id, target.region)
        assert healthy(sandbox, target.instance_id, target.region)
        assert (mapping["DeviceName"], mapping["Ebs"]["VolumeId"]) == (
            target.root_device_name, target.root_volume_id)
        assert not sandbox.channel_file_present(target.root_volume_id)
    # resolve:ssm: read once per account and Region; each Region's rescue instances ran
    # that Region's own Windows Server 2022 AMI, and none is left.
    assert sandbox.api_call_counts()[("ssm", "GetParameter")] == len(regions)
    for region in regions:
        launched = sandbox.client("ec2", region).describe_instances(Filters=[
            {"Name": "tag:remediate:role", "Values": ["rescue"]}])["Reservations"]
        instances = [i for r in launched for i in r["Instances"]]
        assert instances and {i["ImageId"] for i in instances} == {
            fleet.regions[region].rescue_windows_ami}
        assert {i["State"]["Name"] for i in instances} == {"terminated"}


def test_reboot_first(sandbox: Sandbox, tmp_path: Path) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=2, reboot_fixable=3, reboots_to_fix=2, azs=1))
    assert run(sandbox, "ec2-reboot-first.yaml", tmp_path) == 2  # the plain ones need route 2
    # Nothing stops an instance: its stop protection is not worth a call per target.
    assert sandbox.api_call_counts()[("ec2", "DescribeInstanceAttribute")] == 0
    for target in fleet.by_kind("reboot_fixable"):
        assert healthy(sandbox, target.instance_id)
        assert root_mapping(sandbox, target.instance_id)["Ebs"]["VolumeId"] == \
            target.root_volume_id
    for target in fleet.by_kind("plain"):
        assert not healthy(sandbox, target.instance_id)
        assert instance(sandbox, target.instance_id)["State"]["Name"] == "running"


def test_replace_root_needs_acceptance(sandbox: Sandbox, tmp_path: Path) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=0, instance_store=1, spot_one_time=1, azs=1))
    ids = tuple(fleet.instance_ids())
    assert run(sandbox, "ec2-replace-root-volume.yaml", tmp_path,
               targets=TargetArgs(target_ids=ids)) == 2
    assert not any(healthy(sandbox, i) for i in ids)
    assert run(sandbox, "ec2-replace-root-volume.yaml", tmp_path,
               targets=TargetArgs(target_ids=ids),
               accepted=frozenset({"root-replacement-data-loss"})) == 0
    for target in fleet.targets:
        assert healthy(sandbox, target.instance_id)
        new_root = root_mapping(sandbox, target.instance_id)["Ebs"]["VolumeId"]
        assert new_root != target.root_volume_id
        assert not sandbox.channel_file_present(new_root)
        # The replaced root volume is kept, never deleted.
        old = sandbox.client("ec2").describe_volumes(VolumeIds=[target.root_volume_id])
        assert old["Volumes"][0]["State"] == "available"
    (store,) = fleet.by_kind("instance_store")
    assert sandbox.instance_store_intact(store.instance_id)


WORKSPACE_DATA_LOSS = frozenset({"workspace-restore-data-loss", "workspace-rebuild-data-loss"})


def workspace_states(sb: Sandbox, ids: list[str]) -> dict[str, str]:
    found = sb.client("workspaces").describe_workspaces(WorkspaceIds=ids)["Workspaces"]
    return {w["WorkspaceId"]: w["State"] for w in found}


def report_of(path: Path) -> dict[str, tuple[str, str | None, list[str]]]:
    """Target id -> (status, error, the steps it ran), from a JSON report."""
    return {t["id"]: (t["status"], t["error"], [s["id"] for s in t["steps"]
                                                if s["status"] != "skipped"])
            for t in json.loads(path.read_text())["targets"]}


def test_workspaces(sandbox: Sandbox, tmp_path: Path) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=0, workspaces=5, azs=1))
    report = tmp_path / "run.json"
    assert run(sandbox, "workspaces-recover.yaml", tmp_path, accepted=WORKSPACE_DATA_LOSS,
               reports=(f"json:{report}",)) == 0
    ids = [w.workspace_id for w in fleet.workspaces]
    assert workspace_states(sandbox, ids) == {wid: "AVAILABLE" for wid in ids}
    # AWSSupport-RecoverWorkSpace's route: each step only where the one before did not help.
    route = {"reboot": ["start", "reboot", "verify"],
             "restore": ["start", "reboot", "restore", "verify"],
             "rebuild": ["start", "reboot", "restore", "rebuild", "verify"],
             "stopped": ["start", "verify"],
             "stopped-reboot": ["start", "reboot", "verify"]}  # it starts UNHEALTHY
    assert report_of(report) == {w.workspace_id: ("succeeded", None, route[w.fixed_by])
                                 for w in fleet.workspaces}


def test_workspaces_destructive_steps_need_acceptance(sandbox: Sandbox, tmp_path: Path) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=0, workspaces=4, azs=1))
    ids = [w.workspace_id for w in fleet.workspaces]
    client = sandbox.client("workspaces")

    def states() -> dict[str, str]:
        found = client.describe_workspaces(WorkspaceIds=ids)["Workspaces"]
        return {w["WorkspaceId"]: w["State"] for w in found}

    fixed_by = {w.workspace_id: w.fixed_by for w in fleet.workspaces}
    assert sorted(fixed_by.values()) == ["reboot", "rebuild", "restore", "stopped"]
    report = tmp_path / "run.json"
    assert run(sandbox, "workspaces-recover.yaml", tmp_path,
               reports=(f"json:{report}",)) == 2
    # What needs no data loss was done (start, reboot); each WorkSpace that needs a
    # restore or a rebuild stopped before that step, and was never restored or rebuilt.
    outcome = {t["id"]: (t["status"], t["error"])
               for t in json.loads(report.read_text())["targets"]}
    restore_needed = ("refused", "stopped before step restore: workspace-restore-data-loss "
                      "not accepted (--accept workspace-restore-data-loss): restoring a "
                      "WorkSpace loses up to 12 hours of user data (back to the last healthy "
                      "snapshot)")
    assert outcome == {wid: ("succeeded", None) if how in ("reboot", "stopped")
                       else restore_needed for wid, how in fixed_by.items()}
    # (and the run's claim tags, put on and taken off)
    assert {c.operation for c in sandbox.api_calls if c.mutating} == {
        "StartWorkspaces", "RebootWorkspaces", "CreateTags", "DeleteTags"}
    assert {wid: state for wid, state in states().items()
            if fixed_by[wid] in ("reboot", "stopped")} == {
        wid: "AVAILABLE" for wid, how in fixed_by.items() if how in ("reboot", "stopped")}


def test_a_rerun_skips_the_workspaces_already_healthy(sandbox: Sandbox, tmp_path: Path) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=0, workspaces=5, azs=1))
    fixed_by = {w.workspace_id: w.fixed_by for w in fleet.workspaces}
    assert run(sandbox, "workspaces-recover.yaml", tmp_path) == 2  # restores not accepted
    sandbox.reset_api_calls()
    report = tmp_path / "rerun.json"

    assert run(sandbox, "workspaces-recover.yaml", tmp_path, accepted=WORKSPACE_DATA_LOSS,
               reports=(f"json:{report}",)) == 0

    # The first run made these AVAILABLE: the rerun leaves them (and their users'
    # sessions) alone, and goes on with the two that needed a restore.
    healthy = ("skipped", "already healthy (AVAILABLE: WorkSpaces' health checks pass)", [])
    expected = {"restore": ("succeeded", None, ["start", "reboot", "restore", "verify"]),
                "rebuild": ("succeeded", None,
                            ["start", "reboot", "restore", "rebuild", "verify"])}
    assert report_of(report) == {wid: expected.get(how, healthy)
                                 for wid, how in fixed_by.items()}
    assert sandbox.api_call_counts()[("workspaces", "StartWorkspaces")] == 0
    assert workspace_states(sandbox, list(fixed_by)) == {wid: "AVAILABLE" for wid in fixed_by}


def test_root_replacement_needs_acceptance_before_anything_runs(
        sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.build_fleet(FleetSpec(plain=2, azs=1))
    assert run(sandbox, "ec2-replace-root-volume.yaml", tmp_path) == 2
    # Its destructive step is unconditional: refused up front, no mutating call at all.
    assert [c for c in sandbox.api_calls if c.mutating] == []
