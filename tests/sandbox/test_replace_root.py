from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from remediate.clock import VirtualClock
from remediate.sandbox import Fleet, Sandbox

from .conftest import error_of, status_of


def _task(ec2: Any, task_id: str) -> dict[str, Any]:
    tasks = ec2.describe_replace_root_volume_tasks(ReplaceRootVolumeTaskIds=[task_id])
    found: dict[str, Any] = tasks["ReplaceRootVolumeTasks"][0]
    return found


def _root(ec2: Any, instance_id: str) -> str:
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return str(
        next(
            m["Ebs"]["VolumeId"]
            for m in instance["BlockDeviceMappings"]
            if m["DeviceName"] == instance["RootDeviceName"]
        )
    )


def test_replace_root_to_launch_state_repairs_and_keeps_instance_store(
    sandbox: Sandbox, ec2: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    target = fleet.by_kind("instance_store")[0]
    task = ec2.create_replace_root_volume_task(InstanceId=target.instance_id)
    task_id = task["ReplaceRootVolumeTask"]["ReplaceRootVolumeTaskId"]
    assert task["ReplaceRootVolumeTask"]["TaskState"] == "pending"
    clock.advance(10)
    assert _task(ec2, task_id)["TaskState"] == "in-progress"
    assert status_of(ec2, target.instance_id)[0] == "initializing"
    clock.advance(120)
    assert _task(ec2, task_id)["TaskState"] == "succeeded"
    new_root = _root(ec2, target.instance_id)
    assert new_root != target.root_volume_id
    assert not sandbox.channel_file_present(new_root)
    old = ec2.describe_volumes(VolumeIds=[target.root_volume_id])["Volumes"][0]
    assert old["State"] == "available"
    assert sandbox.instance_store_intact(target.instance_id)
    clock.advance(60)
    assert status_of(ec2, target.instance_id) == ("ok", "ok")


def test_replace_root_from_a_broken_snapshot_stays_broken(
    ec2: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    target = fleet.by_kind("plain")[0]
    snapshot = ec2.create_snapshot(VolumeId=target.root_volume_id)["SnapshotId"]
    clock.advance(60)
    ec2.create_replace_root_volume_task(
        InstanceId=target.instance_id, SnapshotId=snapshot, DeleteReplacedRootVolume=True
    )
    clock.advance(10 + 120 + 60)
    assert status_of(ec2, target.instance_id) == ("impaired", "ok")
    assert (
        ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [target.root_volume_id]}])[
            "Volumes"
        ]
        == []
    )


def test_replace_root_needs_a_running_instance(ec2: Any, fleet: Fleet, clock: VirtualClock) -> None:
    target = fleet.by_kind("plain")[0].instance_id
    ec2.stop_instances(InstanceIds=[target])
    clock.advance(90)
    with pytest.raises(ClientError) as excinfo:
        ec2.create_replace_root_volume_task(InstanceId=target)
    assert error_of(excinfo)[0] == "IncorrectInstanceState"


def test_one_replace_root_task_at_a_time(ec2: Any, fleet: Fleet) -> None:
    target = fleet.by_kind("plain")[0].instance_id
    ec2.create_replace_root_volume_task(InstanceId=target)
    with pytest.raises(ClientError) as excinfo:
        ec2.create_replace_root_volume_task(InstanceId=target)
    assert error_of(excinfo)[0] == "IncorrectState"
