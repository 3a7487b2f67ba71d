"""The volume swap, end to end through boto3, repairs a target."""

from __future__ import annotations

import re
from typing import Any

from remediate.clock import VirtualClock
from remediate.sandbox import Fleet, FleetSpec, Sandbox, Target
from remediate.sandbox.state import RecoveryKey

from .conftest import status_of


def _script(volume_id: str) -> str:
    return (
        f'$volumeId = "{volume_id}"\n'
        '$disk = Get-Disk | Where-Object SerialNumber -like ($volumeId -replace "-", "") + "*"\n'
        "Set-Disk -Number $disk.Number -IsOffline $false\n"
        'Get-ChildItem -Path "E:\\Windows\\System32\\drivers\\CrowdStrike\\" '
        "-Include C-00000291*.sys -Recurse | ForEach-Object { $_.Delete() }\n"
    )


def _rescue(ec2: Any, fleet: Fleet, clock: VirtualClock, target: Target) -> str:
    setup = fleet.regions[target.region]
    rescue = ec2.run_instances(
        ImageId=setup.rescue_windows_ami,
        InstanceType="m5.large",
        MinCount=1,
        MaxCount=1,
        SubnetId=setup.subnets[target.availability_zone],
    )["Instances"][0]["InstanceId"]
    clock.advance(120)
    return str(rescue)


def _onto_rescue(ec2: Any, clock: VirtualClock, target: Target, rescue: str) -> None:
    """Stop the target and move its root volume to the rescue instance, as a data disk."""
    ec2.stop_instances(InstanceIds=[target.instance_id])
    clock.advance(90)
    ec2.detach_volume(VolumeId=target.root_volume_id)
    clock.advance(10)
    ec2.attach_volume(VolumeId=target.root_volume_id, InstanceId=rescue, Device="xvdf")
    clock.advance(5)


def _run(ssm: Any, clock: VirtualClock, rescue: str, script: str) -> dict[str, Any]:
    command = ssm.send_command(
        InstanceIds=[rescue],
        DocumentName="AWS-RunPowerShellScript",
        Parameters={"commands": [script]},
    )["Command"]
    clock.advance(20)
    result: dict[str, Any] = ssm.get_command_invocation(
        CommandId=command["CommandId"], InstanceId=rescue
    )
    return result


def test_volume_swap_repairs_the_target(
    sandbox: Sandbox, ec2: Any, ssm: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    target = fleet.by_kind("plain")[0]
    rescue = _rescue(ec2, fleet, clock, target)
    assert fleet.regions[target.region].rescue_windows_ami != target.image_id
    _onto_rescue(ec2, clock, target, rescue)

    invocation = _run(ssm, clock, rescue, _script(target.root_volume_id))

    assert invocation["Status"] == "Success"
    assert invocation["ResponseCode"] == 0
    assert "deleted" in invocation["StandardOutputContent"]
    assert not sandbox.channel_file_present(target.root_volume_id)
    ec2.detach_volume(VolumeId=target.root_volume_id)
    clock.advance(10)
    ec2.attach_volume(
        VolumeId=target.root_volume_id, InstanceId=target.instance_id, Device="/dev/sda1"
    )
    clock.advance(5)
    ec2.start_instances(InstanceIds=[target.instance_id])
    clock.advance(60)
    assert status_of(ec2, target.instance_id) == ("initializing", "initializing")
    clock.advance(60)
    assert status_of(ec2, target.instance_id) == ("ok", "ok")


def test_repair_of_a_volume_not_attached_fails_clearly(
    sandbox: Sandbox, ec2: Any, ssm: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    target = fleet.by_kind("plain")[0]
    rescue = _rescue(ec2, fleet, clock, target)

    invocation = _run(ssm, clock, rescue, _script(target.root_volume_id))

    assert invocation["Status"] == "Failed"
    assert invocation["ResponseCode"] == 1
    assert invocation["StandardErrorContent"] == (
        f"Disk for volume {target.root_volume_id} not found: the volume is not attached "
        f"to {rescue} as a data disk."
    )
    assert sandbox.channel_file_present(target.root_volume_id)


def test_repaired_snapshot_gives_clean_volumes(
    sandbox: Sandbox, ec2: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    target = fleet.by_kind("plain")[0]
    before = ec2.create_snapshot(VolumeId=target.root_volume_id)["SnapshotId"]
    sandbox.world.bad_volumes.discard(target.root_volume_id)
    after = ec2.create_snapshot(VolumeId=target.root_volume_id)["SnapshotId"]
    zone = target.availability_zone
    dirty = ec2.create_volume(AvailabilityZone=zone, SnapshotId=before)["VolumeId"]
    clean = ec2.create_volume(AvailabilityZone=zone, SnapshotId=after)["VolumeId"]
    assert sandbox.channel_file_present(dirty)
    assert not sandbox.channel_file_present(clean)


def test_the_repair_cannot_open_a_bitlocker_volume(
    sandbox: Sandbox, ec2: Any, ssm: Any, clock: VirtualClock
) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=0, bitlocker=1, azs=1))
    [target] = fleet.by_kind("bitlocker")
    rescue = _rescue(ec2, fleet, clock, target)
    _onto_rescue(ec2, clock, target, rescue)

    invocation = _run(ssm, clock, rescue, _script(target.root_volume_id))

    key = sandbox.world.bitlocker_volumes[target.root_volume_id]
    assert invocation["Status"] == "Failed"
    assert invocation["ResponseCode"] == 7
    assert invocation["StandardErrorContent"] == (
        f"{target.root_volume_id}: BitLocker-locked (recovery key ID {key.key_id}) and no key "
        "escrow named: set the repair step's bitlocker_keys (e.g. --param "
        "bitlocker_keys=ssm:/bitlocker/{volume_id}), or unlock it by hand (manage-bde -unlock "
        "<letter>: -RecoveryPassword <key>) and repair again")
    assert sandbox.channel_file_present(target.root_volume_id)


def test_a_recovery_key_is_48_digits_in_groups_of_multiples_of_11() -> None:
    key = RecoveryKey.of("vol-0123456789abcdef0")
    groups = key.password.split("-")
    assert len(groups) == 8 and all(len(g) == 6 and int(g) % 11 == 0 for g in groups)
    assert re.fullmatch(r"\{[0-9A-F]{8}(-[0-9A-F]{4}){3}-[0-9A-F]{12}\}", key.key_id)
    assert RecoveryKey.of("vol-0123456789abcdef0") == key != RecoveryKey.of("vol-1")
