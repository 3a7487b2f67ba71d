from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from remediate.clock import VirtualClock
from remediate.sandbox import Fleet, Sandbox

from .conftest import error_of, volume


def _other_zone(fleet: Fleet, zone: str) -> str:
    return next(z for z in fleet.regions["us-east-1"].subnets if z != zone)


def _stopped(ec2: Any, clock: VirtualClock, instance_id: str) -> None:
    ec2.stop_instances(InstanceIds=[instance_id])
    clock.advance(90)


def _detached(ec2: Any, clock: VirtualClock, target: Any) -> None:
    """Stop ``target`` and take its root volume off it (available once this returns)."""
    _stopped(ec2, clock, target.instance_id)
    ec2.detach_volume(VolumeId=target.root_volume_id)
    clock.advance(10)


def _rescue(ec2: Any, fleet: Fleet, clock: VirtualClock, zone: str) -> str:
    setup = fleet.regions["us-east-1"]
    rescue = ec2.run_instances(
        ImageId=setup.rescue_windows_ami,
        InstanceType="m5.large",
        MinCount=1,
        MaxCount=1,
        SubnetId=setup.subnets[zone],
    )["Instances"][0]["InstanceId"]
    clock.advance(120)
    return str(rescue)


def test_detaching_the_root_of_a_running_instance_is_refused(ec2: Any, fleet: Fleet) -> None:
    target = fleet.by_kind("plain")[0]
    with pytest.raises(ClientError) as excinfo:
        ec2.detach_volume(VolumeId=target.root_volume_id)
    assert error_of(excinfo) == (
        "IncorrectState",
        f"Unable to detach root volume '{target.root_volume_id}' from instance "
        f"'{target.instance_id}'",
    )


def test_marketplace_root_detach_names_the_product_codes(ec2: Any, fleet: Fleet) -> None:
    target = fleet.by_kind("marketplace")[0]
    with pytest.raises(ClientError) as excinfo:
        ec2.detach_volume(VolumeId=target.root_volume_id)
    assert error_of(excinfo)[0] == "IncorrectInstanceState"
    assert "with Marketplace codes" in error_of(excinfo)[1]


def test_detach_goes_detaching_then_available(ec2: Any, fleet: Fleet, clock: VirtualClock) -> None:
    target = fleet.by_kind("plain")[0]
    _stopped(ec2, clock, target.instance_id)
    answer = ec2.detach_volume(VolumeId=target.root_volume_id)
    assert answer["State"] == "detaching"
    described = volume(ec2, target.root_volume_id)
    assert described["State"] == "in-use"
    assert described["Attachments"][0]["State"] == "detaching"
    clock.advance(10)
    assert volume(ec2, target.root_volume_id)["State"] == "available"


def test_detaching_an_available_volume_is_refused(
    ec2: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    target = fleet.by_kind("plain")[0]
    _detached(ec2, clock, target)
    with pytest.raises(ClientError) as excinfo:
        ec2.detach_volume(VolumeId=target.root_volume_id)
    assert error_of(excinfo) == (
        "IncorrectState",
        f"Volume '{target.root_volume_id}' is in the 'available' state.",
    )


def test_attach_across_availability_zones_is_refused(
    ec2: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    target = fleet.by_kind("plain")[0]
    rescue = _rescue(ec2, fleet, clock, _other_zone(fleet, target.availability_zone))
    _detached(ec2, clock, target)
    with pytest.raises(ClientError) as excinfo:
        ec2.attach_volume(VolumeId=target.root_volume_id, InstanceId=rescue, Device="xvdf")
    assert error_of(excinfo) == (
        "InvalidVolume.ZoneMismatch",
        f"The volume '{target.root_volume_id}' is not in the same availability zone as "
        f"instance '{rescue}'",
    )


def test_attach_of_an_attached_volume_is_refused(
    ec2: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    target = fleet.by_kind("plain")[0]
    rescue = _rescue(ec2, fleet, clock, target.availability_zone)
    with pytest.raises(ClientError) as excinfo:
        ec2.attach_volume(VolumeId=target.root_volume_id, InstanceId=rescue, Device="xvdf")
    assert error_of(excinfo) == (
        "VolumeInUse",
        f"{target.root_volume_id} is already attached to an instance",
    )


def test_attach_at_a_taken_device_is_refused(ec2: Any, fleet: Fleet, clock: VirtualClock) -> None:
    first, second = [t for t in fleet.by_kind("plain")][:2]
    if first.availability_zone != second.availability_zone:
        second = next(
            t
            for t in fleet.targets
            if t.availability_zone == first.availability_zone
            and t is not first
            and t.kind in ("plain", "reboot_fixable", "hibernation", "instance_store")
        )
    rescue = _rescue(ec2, fleet, clock, first.availability_zone)
    for target in (first, second):
        _stopped(ec2, clock, target.instance_id)
        ec2.detach_volume(VolumeId=target.root_volume_id)
    clock.advance(10)
    ec2.attach_volume(VolumeId=first.root_volume_id, InstanceId=rescue, Device="xvdf")
    with pytest.raises(ClientError) as excinfo:
        ec2.attach_volume(VolumeId=second.root_volume_id, InstanceId=rescue, Device="xvdf")
    assert error_of(excinfo) == (
        "InvalidParameterValue",
        "Invalid value 'xvdf' for unixDevice. Attachment point xvdf is already in use",
    )


def test_attach_goes_attaching_then_attached(ec2: Any, fleet: Fleet, clock: VirtualClock) -> None:
    target = fleet.by_kind("plain")[0]
    rescue = _rescue(ec2, fleet, clock, target.availability_zone)
    _detached(ec2, clock, target)
    answer = ec2.attach_volume(VolumeId=target.root_volume_id, InstanceId=rescue, Device="xvdf")
    assert answer["State"] == "attaching"
    assert volume(ec2, target.root_volume_id)["Attachments"][0]["State"] == "attaching"
    clock.advance(5)
    attached = volume(ec2, target.root_volume_id)
    assert attached["State"] == "in-use"
    assert attached["Attachments"][0]["State"] == "attached"
    assert attached["Attachments"][0]["InstanceId"] == rescue


def test_attaching_a_volume_whose_kms_key_is_unusable_fails_and_leaves_it_available(
        ec2: Any, fleet: Fleet, clock: VirtualClock) -> None:
    # The fleet's encrypted_bad_key roots use a key pending deletion.
    target = fleet.by_kind("encrypted_bad_key")[0]
    rescue = _rescue(ec2, fleet, clock, target.availability_zone)
    _detached(ec2, clock, target)

    answer = ec2.attach_volume(VolumeId=target.root_volume_id, InstanceId=rescue, Device="xvdf")
    assert answer["State"] == "attaching"
    clock.advance(5)

    found = volume(ec2, target.root_volume_id)
    assert (found["State"], found["Attachments"], found["Encrypted"]) == ("available", [], True)
    # Nothing lost: it can still be put back (and fails there the same way until the key
    # is usable again).
    ec2.attach_volume(VolumeId=target.root_volume_id, InstanceId=target.instance_id,
                      Device="/dev/sda1")
    clock.advance(5)
    assert volume(ec2, target.root_volume_id)["State"] == "available"


def test_a_marketplace_root_attaches_only_to_a_stopped_instance(
        ec2: Any, fleet: Fleet, clock: VirtualClock) -> None:
    target = fleet.by_kind("marketplace")[0]
    rescue = _rescue(ec2, fleet, clock, target.availability_zone)
    _detached(ec2, clock, target)

    with pytest.raises(ClientError) as refused:
        ec2.attach_volume(VolumeId=target.root_volume_id, InstanceId=rescue, Device="xvdf")

    assert error_of(refused) == (
        "IncorrectInstanceState",
        f"Unable to attach volume '{target.root_volume_id}' with Marketplace codes to "
        f"instance '{rescue}' as the instance is not in the 'stopped' state.")
    # Its own, stopped instance takes it back.
    ec2.attach_volume(VolumeId=target.root_volume_id, InstanceId=target.instance_id,
                      Device="/dev/sda1")
    clock.advance(5)
    assert volume(ec2, target.root_volume_id)["State"] == "in-use"


def test_attach_to_a_stopping_instance_is_refused(
    ec2: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    target = fleet.by_kind("plain")[0]
    spare = ec2.create_volume(AvailabilityZone=target.availability_zone, Size=10)["VolumeId"]
    ec2.stop_instances(InstanceIds=[target.instance_id])
    with pytest.raises(ClientError) as excinfo:
        ec2.attach_volume(VolumeId=spare, InstanceId=target.instance_id, Device="xvdg")
    assert error_of(excinfo) == (
        "IncorrectState",
        f"Instance '{target.instance_id}' is not 'running'.",
    )


def test_snapshot_goes_pending_then_completed_and_carries_the_file(
    ec2: Any, fleet: Fleet, clock: VirtualClock, sandbox: Sandbox
) -> None:
    target = fleet.by_kind("plain")[0]
    snapshot = ec2.create_snapshot(VolumeId=target.root_volume_id)
    assert snapshot["State"] == "pending"
    clock.advance(60)
    described = ec2.describe_snapshots(SnapshotIds=[snapshot["SnapshotId"]])["Snapshots"][0]
    assert (described["State"], described["Progress"]) == ("completed", "100%")
    copy = ec2.create_volume(
        AvailabilityZone=target.availability_zone, SnapshotId=snapshot["SnapshotId"]
    )["VolumeId"]
    assert sandbox.channel_file_present(copy)
    blank = ec2.create_volume(AvailabilityZone=target.availability_zone, Size=8)["VolumeId"]
    assert not sandbox.channel_file_present(blank)


def test_a_snapshot_starts_at_the_sandbox_clocks_time(
    ec2: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    # Its age (readiness' root-snapshot-fresh) follows simulated time, not the host's.
    clock.advance(3600)
    started = clock.wall()
    snapshot = ec2.create_snapshot(VolumeId=fleet.by_kind("plain")[0].root_volume_id)
    clock.advance(86400)
    described = ec2.describe_snapshots(SnapshotIds=[snapshot["SnapshotId"]])["Snapshots"][0]
    assert snapshot["StartTime"] == described["StartTime"] == started
