from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from remediate.clock import VirtualClock
from remediate.sandbox import Durations, Fleet, Sandbox

from .conftest import error_of, state_of, status_of


def test_stop_takes_the_stop_duration(ec2: Any, fleet: Fleet, clock: VirtualClock) -> None:
    target = fleet.by_kind("plain")[0].instance_id
    change = ec2.stop_instances(InstanceIds=[target])["StoppingInstances"][0]
    assert change["CurrentState"]["Name"] == "stopping"
    assert change["PreviousState"]["Name"] == "running"
    clock.advance(Durations().instance_stop - 1)
    assert state_of(ec2, target) == "stopping"
    clock.advance(1)
    assert state_of(ec2, target) == "stopped"


def test_a_stop_skipping_the_os_shutdown_is_quicker(
    ec2: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    skipped, then_skipped = (t.instance_id for t in fleet.by_kind("plain")[:2])
    durations = Durations()
    ec2.stop_instances(InstanceIds=[skipped], SkipOsShutdown=True)
    # A graceful stop under way is cut short by one that skips the OS shutdown.
    ec2.stop_instances(InstanceIds=[then_skipped])
    clock.advance(durations.instance_stop_skip_os - 1)
    ec2.stop_instances(InstanceIds=[then_skipped], SkipOsShutdown=True)
    clock.advance(1)
    assert (state_of(ec2, skipped), state_of(ec2, then_skipped)) == ("stopped", "stopping")
    clock.advance(durations.instance_stop_skip_os - 1)
    assert state_of(ec2, then_skipped) == "stopped"


def test_start_goes_pending_then_running_then_boots(
    ec2: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    target = fleet.by_kind("plain")[0].instance_id
    ec2.stop_instances(InstanceIds=[target])
    clock.advance(90)
    change = ec2.start_instances(InstanceIds=[target])["StartingInstances"][0]
    assert (change["PreviousState"]["Name"], change["CurrentState"]["Name"]) == (
        "stopped",
        "pending",
    )
    assert state_of(ec2, target) == "pending"
    clock.advance(60)
    assert state_of(ec2, target) == "running"
    assert status_of(ec2, target) == ("initializing", "initializing")
    clock.advance(60)
    assert status_of(ec2, target) == ("impaired", "ok")


def test_broken_targets_are_running_and_impaired(ec2: Any, fleet: Fleet) -> None:
    for target in fleet.targets:
        assert state_of(ec2, target.instance_id) == "running"
        assert status_of(ec2, target.instance_id) == ("impaired", "ok")


def test_stopping_a_one_time_spot_instance_is_unsupported(ec2: Any, fleet: Fleet) -> None:
    spot = fleet.by_kind("spot_one_time")[0].instance_id
    with pytest.raises(ClientError) as excinfo:
        ec2.stop_instances(InstanceIds=[spot])
    assert error_of(excinfo) == (
        "UnsupportedOperation",
        f"You can't stop the Spot Instance '{spot}' because it is associated with a one-time "
        "Spot Instance request. You can only stop Spot Instances associated with persistent "
        "Spot Instance requests.",
    )
    assert state_of(ec2, spot) == "running"


def test_a_persistent_spot_instance_can_be_stopped(
    ec2: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    spot = fleet.by_kind("spot_persistent")[0].instance_id
    ec2.stop_instances(InstanceIds=[spot])
    clock.advance(90)
    assert state_of(ec2, spot) == "stopped"


def test_persistent_spot_without_root_volume_is_terminated_on_start(
    ec2: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    spot = fleet.by_kind("spot_persistent")[0]
    ec2.stop_instances(InstanceIds=[spot.instance_id])
    clock.advance(90)
    ec2.detach_volume(VolumeId=spot.root_volume_id)
    clock.advance(10)
    ec2.start_instances(InstanceIds=[spot.instance_id])
    clock.advance(60)
    assert state_of(ec2, spot.instance_id) == "terminated"


def test_stop_protection_blocks_the_whole_call(ec2: Any, fleet: Fleet) -> None:
    protected = fleet.by_kind("stop_protected")[0].instance_id
    plain = fleet.by_kind("plain")[0].instance_id
    with pytest.raises(ClientError) as excinfo:
        ec2.stop_instances(InstanceIds=[plain, protected])
    assert error_of(excinfo) == (
        "OperationNotPermitted",
        f"The instance '{protected}' may not be stopped. Modify its 'disableApiStop' "
        "instance attribute and try again.",
    )
    assert state_of(ec2, plain) == "running"


def test_stopping_a_pending_instance_is_refused(
    ec2: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    target = fleet.by_kind("plain")[0].instance_id
    ec2.stop_instances(InstanceIds=[target])
    clock.advance(90)
    ec2.start_instances(InstanceIds=[target])
    with pytest.raises(ClientError) as excinfo:
        ec2.stop_instances(InstanceIds=[target])
    assert error_of(excinfo) == (
        "IncorrectInstanceState",
        f"Instance '{target}' cannot be stopped as it has never reached the 'running' state.",
    )


def test_starting_a_stopping_instance_is_refused(ec2: Any, fleet: Fleet) -> None:
    target = fleet.by_kind("plain")[0].instance_id
    ec2.stop_instances(InstanceIds=[target])
    with pytest.raises(ClientError) as excinfo:
        ec2.start_instances(InstanceIds=[target])
    assert error_of(excinfo) == (
        "IncorrectInstanceState",
        f"The instance '{target}' is not in a state from which it can be started.",
    )


def test_start_without_a_root_volume_is_refused(
    ec2: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    target = fleet.by_kind("plain")[0]
    ec2.stop_instances(InstanceIds=[target.instance_id])
    clock.advance(90)
    ec2.detach_volume(VolumeId=target.root_volume_id)
    clock.advance(10)
    with pytest.raises(ClientError) as excinfo:
        ec2.start_instances(InstanceIds=[target.instance_id])
    assert error_of(excinfo) == (
        "InvalidParameterValue",
        f"Invalid value '{target.instance_id}' for instanceId. "
        "Instance does not have a volume attached at root (/dev/sda1)",
    )


def test_reboot_needs_a_running_instance(ec2: Any, fleet: Fleet, clock: VirtualClock) -> None:
    target = fleet.by_kind("plain")[0].instance_id
    ec2.stop_instances(InstanceIds=[target])
    clock.advance(90)
    with pytest.raises(ClientError) as excinfo:
        ec2.reboot_instances(InstanceIds=[target])
    assert error_of(excinfo)[0] == "IncorrectInstanceState"


def test_reboot_fixable_target_heals_after_its_reboots(
    ec2: Any, fleet: Fleet, clock: VirtualClock, sandbox: Sandbox
) -> None:
    target = fleet.by_kind("reboot_fixable")[0]
    ec2.reboot_instances(InstanceIds=[target.instance_id])
    assert status_of(ec2, target.instance_id) == ("initializing", "initializing")
    clock.advance(60)
    assert status_of(ec2, target.instance_id) == ("impaired", "ok")
    assert sandbox.channel_file_present(target.root_volume_id)
    ec2.reboot_instances(InstanceIds=[target.instance_id])
    clock.advance(60)
    assert status_of(ec2, target.instance_id) == ("ok", "ok")
    assert not sandbox.channel_file_present(target.root_volume_id)


def test_plain_target_stays_impaired_after_reboots(
    ec2: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    target = fleet.by_kind("plain")[0].instance_id
    for _ in range(3):
        ec2.reboot_instances(InstanceIds=[target])
        clock.advance(60)
    assert status_of(ec2, target) == ("impaired", "ok")


def test_instance_store_is_lost_on_stop(
    ec2: Any, fleet: Fleet, clock: VirtualClock, sandbox: Sandbox
) -> None:
    target = fleet.by_kind("instance_store")[0].instance_id
    assert sandbox.instance_store_intact(target)
    ec2.reboot_instances(InstanceIds=[target])
    assert sandbox.instance_store_intact(target)
    ec2.stop_instances(InstanceIds=[target])
    assert not sandbox.instance_store_intact(target)
    described = ec2.describe_instance_types(InstanceTypes=["m5d.large"])["InstanceTypes"][0]
    assert described["InstanceStorageSupported"] is True


def test_bad_kms_key_stops_the_instance_on_start(
    ec2: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    target = fleet.by_kind("encrypted_bad_key")[0].instance_id
    ec2.stop_instances(InstanceIds=[target])
    clock.advance(90)
    ec2.start_instances(InstanceIds=[target])
    clock.advance(60)
    instance = ec2.describe_instances(InstanceIds=[target])["Reservations"][0]["Instances"][0]
    assert instance["State"]["Name"] == "stopped"
    assert instance["StateReason"]["Code"] == "Client.InvalidKMSKey.InvalidState"


def test_public_ip_changes_across_stop_start_without_eip(
    ec2: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    plain = next(t for t in fleet.by_kind("plain") if t.elastic_ip is None).instance_id

    def public_ip() -> str | None:
        instance = ec2.describe_instances(InstanceIds=[plain])["Reservations"][0]["Instances"][0]
        return instance.get("PublicIpAddress")

    before = public_ip()
    assert before
    ec2.stop_instances(InstanceIds=[plain])
    clock.advance(90)
    ec2.start_instances(InstanceIds=[plain])
    clock.advance(60)
    assert public_ip() not in (None, before)


def test_launched_instances_start_pending(ec2: Any, fleet: Fleet, clock: VirtualClock) -> None:
    setup = fleet.regions["us-east-1"]
    zone = next(iter(setup.subnets))
    launched = ec2.run_instances(
        ImageId=setup.rescue_windows_ami,
        InstanceType="m5.large",
        MinCount=1,
        MaxCount=1,
        SubnetId=setup.subnets[zone],
    )["Instances"][0]["InstanceId"]
    assert state_of(ec2, launched) == "pending"
    clock.advance(60)
    assert state_of(ec2, launched) == "running"
    clock.advance(60)
    assert status_of(ec2, launched) == ("ok", "ok")


@pytest.mark.parametrize(("kind", "request_type", "behaviour"), [
    ("spot_one_time", "one-time", "terminate"), ("spot_persistent", "persistent", "stop")])
def test_a_spot_launch_opens_its_spot_request(
        ec2: Any, fleet: Fleet, kind: str, request_type: str, behaviour: str) -> None:
    spot = fleet.by_kind(kind)[0].instance_id

    [request] = ec2.describe_spot_instance_requests(
        Filters=[{"Name": "instance-id", "Values": [spot]}])["SpotInstanceRequests"]

    assert (request["Type"], request["State"], request["Status"]["Code"],
            request["InstanceInterruptionBehavior"]) == (
        request_type, "active", "fulfilled", behaviour)
    instance = ec2.describe_instances(InstanceIds=[spot])["Reservations"][0]["Instances"][0]
    assert instance["SpotInstanceRequestId"] == request["SpotInstanceRequestId"]
    assert instance["InstanceLifecycle"] == "spot"
    # One request per Spot instance, and no instance launched by the requests themselves.
    assert len(ec2.describe_spot_instance_requests()["SpotInstanceRequests"]) == 2
    launched = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    assert len(launched) == len(fleet.targets)
