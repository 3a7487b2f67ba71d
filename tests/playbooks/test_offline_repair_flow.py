"""The offline repair's critical path (issue 15, item 3), end to end on the sandbox fleet.

The backup is made at once on a fresh target (no DescribeSnapshots first) and not
waited for before the stop; its completion is confirmed before the target counts as
fixed, and one that ends ``error`` fails the target without undoing the repair. The
stop skips the OS shutdown of the crash-looping guest. DeleteOnTermination is set
after the instance runs again, and only where it must change. Asserted in AWS (the
sandbox) and in the calls it received.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from test_builtin_playbooks import healthy, rescue_instances, root_mapping, run

from remediate.clock import ScaledClock, VirtualClock
from remediate.sandbox import ApiCall, Durations, FleetSpec, Sandbox

PLAYBOOK = "ec2-offline-repair.yaml"


def calls_for(sandbox: Sandbox, operation: str, resource_id: str) -> list[ApiCall]:
    return [c for c in sandbox.api_calls
            if c.operation == operation and not c.throttled and not c.dry_run
            and c.names(resource_id)]


def report_of(sandbox: Sandbox, tmp_path: Path, code: int = 0) -> dict[str, Any]:
    report = tmp_path / "run.json"
    found = run(sandbox, PLAYBOOK, tmp_path, reports=(f"json:{report}",))
    assert found == code
    loaded: dict[str, Any] = json.loads(report.read_text())
    return loaded


def backups(sandbox: Sandbox, volume_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = sandbox.client("ec2").describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": [volume_id]},
                                   {"Name": "tag:remediate:purpose", "Values": ["backup"]}],
    )["Snapshots"]
    return found


def test_the_backup_is_made_at_once_and_confirmed_at_the_end(tmp_path: Path) -> None:
    # Snapshots take longer than the whole swap: the stop goes on while the backup is
    # pending, and the target succeeds only once it completed.
    durations = Durations(snapshot=1800.0)
    with Sandbox(clock=VirtualClock(), durations=durations) as sandbox:
        fleet = sandbox.build_fleet(FleetSpec(plain=3, azs=1))

        report = report_of(sandbox, tmp_path)

        assert {t["status"] for t in report["targets"]} == {"succeeded"}
        # A fresh target's first attempt looks for no earlier backup (a lookup filters
        # by the backup's tags; the confirmation reads its snapshot by id).
        lookups = [c for c in sandbox.api_calls if c.operation == "DescribeSnapshots"
                   and c.names("tag:remediate:purpose")]
        assert lookups == []
        for target in fleet.targets:
            (created,) = calls_for(sandbox, "CreateSnapshot", target.root_volume_id)
            (stop,) = calls_for(sandbox, "StopInstances", target.instance_id)
            assert stop.at - created.at < durations.snapshot  # not waited for
            (backup,) = backups(sandbox, target.root_volume_id)
            assert backup["State"] == "completed"
            # Confirmed by id, after the instance was back.
            confirms = calls_for(sandbox, "DescribeSnapshots", backup["SnapshotId"])
            assert confirms and confirms[-1].at >= created.at + durations.snapshot
            assert healthy(sandbox, target.instance_id)
        assert rescue_instances(sandbox) == []


def test_a_backup_that_ends_in_error_fails_the_target_and_keeps_the_repair(
        tmp_path: Path) -> None:
    with Sandbox(clock=VirtualClock()) as sandbox:
        fleet = sandbox.build_fleet(FleetSpec(plain=1, azs=1))
        (target,) = fleet.targets
        sandbox.fail_snapshots(target.root_volume_id)

        report = report_of(sandbox, tmp_path, code=2)

        (failed,) = report["targets"]
        (snapshot,) = backups(sandbox, target.root_volume_id)
        assert snapshot["State"] == "error"  # left for the operator, not deleted
        assert failed["status"] == "failed"
        assert failed["error"] == (
            f"step confirm_backup failed: backup {snapshot['SnapshotId']}: it is error: "
            f"{target.instance_id} has no good backup of its root volume from before this "
            "run; the steps before this one are done and were not rolled back (take a new "
            "snapshot if one is needed)")
        # The repair stands: the repaired root volume is home and the instance healthy.
        mapping = root_mapping(sandbox, target.instance_id)
        assert mapping["Ebs"]["VolumeId"] == target.root_volume_id
        assert mapping["Ebs"]["DeleteOnTermination"] is True
        assert not sandbox.channel_file_present(target.root_volume_id)
        assert healthy(sandbox, target.instance_id)
        assert calls_for(sandbox, "DetachVolume", target.root_volume_id)[-1].at < \
            calls_for(sandbox, "ModifyInstanceAttribute", target.instance_id)[-1].at
        assert rescue_instances(sandbox) == []


def test_the_stop_skips_the_os_shutdown(tmp_path: Path) -> None:
    durations = Durations()
    with Sandbox(clock=VirtualClock(), durations=durations) as sandbox:
        fleet = sandbox.build_fleet(FleetSpec(plain=2, azs=1))

        report_of(sandbox, tmp_path)

        for target in fleet.targets:
            (stop,) = calls_for(sandbox, "StopInstances", target.instance_id)
            assert stop.request.get("SkipOsShutdown") == ["true"]
            detach = calls_for(sandbox, "DetachVolume", target.root_volume_id)[0]
            # Stopped in the skipped shutdown's time, not a graceful stop's.
            assert detach.at - stop.at < durations.instance_stop
            assert healthy(sandbox, target.instance_id)


def test_delete_on_termination_is_set_after_the_start_and_only_where_it_changes(
        tmp_path: Path) -> None:
    durations = Durations()
    with Sandbox(clock=VirtualClock(), durations=durations) as sandbox:
        fleet = sandbox.build_fleet(FleetSpec(plain=2, azs=1))
        kept, dropped = fleet.targets
        sandbox.client("ec2").modify_instance_attribute(
            InstanceId=dropped.instance_id, BlockDeviceMappings=[
                {"DeviceName": dropped.root_device_name, "Ebs": {"DeleteOnTermination": False}}])
        sandbox.reset_api_calls()

        report_of(sandbox, tmp_path)

        (start,) = calls_for(sandbox, "StartInstances", kept.instance_id)
        (modify,) = calls_for(sandbox, "ModifyInstanceAttribute", kept.instance_id)
        assert modify.at >= start.at + durations.instance_start  # once it runs
        assert root_mapping(sandbox, kept.instance_id)["Ebs"]["DeleteOnTermination"] is True
        # Attaching left it false, as it was: nothing to change.
        assert calls_for(sandbox, "ModifyInstanceAttribute", dropped.instance_id) == []
        assert root_mapping(sandbox, dropped.instance_id)["Ebs"]["DeleteOnTermination"] is False
        for target in fleet.targets:
            assert healthy(sandbox, target.instance_id)


def test_the_flow_on_a_moving_clock(tmp_path: Path) -> None:
    # A real clock, scaled: a busy loop a virtual clock would hide shows here as a hang.
    durations = Durations(instance_start=2.0, instance_stop=2.0, instance_stop_skip_os=0.5,
                          instance_boot=2.0, reboot=2.0, volume_attach=0.5,
                          volume_detach=0.5, snapshot=30.0, ssm_command=1.0)
    with Sandbox(clock=ScaledClock(20.0), durations=durations) as sandbox:
        fleet = sandbox.build_fleet(FleetSpec(plain=2, azs=1))

        report = report_of(sandbox, tmp_path)

        assert {t["status"] for t in report["targets"]} == {"succeeded"}
        for target in fleet.targets:
            (backup,) = backups(sandbox, target.root_volume_id)
            assert backup["State"] == "completed"
            assert healthy(sandbox, target.instance_id)
