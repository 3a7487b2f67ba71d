from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from remediate.clock import VirtualClock
from remediate.sandbox import Fleet, FleetSpec, Sandbox

from .conftest import error_of, state_of

ICE = ("InsufficientInstanceCapacity",
       "We currently do not have sufficient m5.large capacity in the Availability Zone you "
       "requested (us-east-1a). Our system will be working on provisioning additional "
       "capacity. You can currently get m5.large capacity by not specifying an Availability "
       "Zone in your request or choosing other Availability Zones.")


@pytest.fixture
def fleet(sandbox: Sandbox) -> Fleet:
    return sandbox.build_fleet(FleetSpec(plain=3, azs=1))


def _stop(ec2: Any, clock: VirtualClock, *ids: str) -> None:
    ec2.stop_instances(InstanceIds=list(ids))
    clock.advance(600)


def _start(ec2: Any, clock: VirtualClock, instance_id: str) -> None:
    ec2.start_instances(InstanceIds=[instance_id])
    clock.advance(600)
    assert state_of(ec2, instance_id) == "running"


def _reserve(ec2: Any, count: int, criteria: str = "targeted") -> str:
    answer = ec2.create_capacity_reservation(
        InstanceType="m5.large", InstancePlatform="Windows", AvailabilityZone="us-east-1a",
        InstanceCount=count, InstanceMatchCriteria=criteria)
    return str(answer["CapacityReservation"]["CapacityReservationId"])


def _described(ec2: Any, reservation_id: str) -> dict[str, Any]:
    found: dict[str, Any] = ec2.describe_capacity_reservations(
        CapacityReservationIds=[reservation_id])["CapacityReservations"][0]
    return found


def _target(ec2: Any, instance_id: str, reservation_id: str) -> None:
    ec2.modify_instance_capacity_reservation_attributes(
        InstanceId=instance_id,
        CapacityReservationSpecification={
            "CapacityReservationTarget": {"CapacityReservationId": reservation_id}})


def test_a_stopped_instance_cannot_start_in_an_exhausted_az(
        sandbox: Sandbox, ec2: Any, fleet: Fleet, clock: VirtualClock) -> None:
    ids = [t.instance_id for t in fleet.targets]
    _stop(ec2, clock, ids[0])
    sandbox.set_capacity("m5.large", "us-east-1a", 2)  # the two still running hold it all
    with pytest.raises(ClientError) as excinfo:
        ec2.start_instances(InstanceIds=[ids[0]])
    assert error_of(excinfo) == ICE
    assert state_of(ec2, ids[0]) == "stopped"
    _stop(ec2, clock, ids[1])  # a stopped instance gives its capacity back
    _start(ec2, clock, ids[0])


def test_a_start_call_that_does_not_fit_starts_none(
        sandbox: Sandbox, ec2: Any, fleet: Fleet, clock: VirtualClock) -> None:
    ids = [t.instance_id for t in fleet.targets]
    _stop(ec2, clock, *ids)
    sandbox.set_capacity("m5.large", "us-east-1a", 2)
    with pytest.raises(ClientError) as excinfo:
        ec2.start_instances(InstanceIds=ids)
    assert error_of(excinfo) == ICE
    assert [state_of(ec2, i) for i in ids] == ["stopped"] * 3


def test_capacity_can_run_out_mid_run_on_the_timeline(
        sandbox: Sandbox, ec2: Any, fleet: Fleet, clock: VirtualClock) -> None:
    ids = [t.instance_id for t in fleet.targets]
    _stop(ec2, clock, ids[0])
    sandbox.set_capacity("m5.large", "us-east-1a", 0, at=clock.now() + 700)
    _start(ec2, clock, ids[0])  # before: fine
    _stop(ec2, clock, ids[0])
    with pytest.raises(ClientError) as excinfo:
        ec2.start_instances(InstanceIds=[ids[0]])
    assert error_of(excinfo) == ICE


def test_a_targeted_reservation_holds_capacity_across_stop_and_start(
        sandbox: Sandbox, ec2: Any, fleet: Fleet, clock: VirtualClock) -> None:
    ids = [t.instance_id for t in fleet.targets]
    sandbox.set_capacity("m5.large", "us-east-1a", 4)  # 3 running + 1 free
    reservation = _reserve(ec2, 1)
    described = _described(ec2, reservation)
    assert (described["State"], described["TotalInstanceCount"],
            described["AvailableInstanceCount"], described["InstanceMatchCriteria"]) == (
        "active", 1, 1, "targeted")
    _stop(ec2, clock, ids[0])
    _target(ec2, ids[0], reservation)
    sandbox.set_capacity("m5.large", "us-east-1a", 0)  # the AZ runs dry meanwhile
    ec2.start_instances(InstanceIds=[ids[0]])
    clock.advance(600)
    instance = ec2.describe_instances(InstanceIds=[ids[0]])["Reservations"][0]["Instances"][0]
    assert instance["State"]["Name"] == "running"
    assert instance["CapacityReservationId"] == reservation
    assert instance["CapacityReservationSpecification"] == {
        "CapacityReservationTarget": {"CapacityReservationId": reservation}}
    assert _described(ec2, reservation)["AvailableInstanceCount"] == 0
    assert sandbox.capacity_reservations_created == 1


def test_reserving_in_an_exhausted_az_fails(
        sandbox: Sandbox, ec2: Any, fleet: Fleet) -> None:
    sandbox.set_capacity("m5.large", "us-east-1a", 3)
    with pytest.raises(ClientError) as excinfo:
        _reserve(ec2, 1)
    assert error_of(excinfo) == ICE
    assert ec2.describe_capacity_reservations()["CapacityReservations"] == []


def test_growing_a_reservation_needs_capacity_and_shrinking_frees_it(
        sandbox: Sandbox, ec2: Any, fleet: Fleet, clock: VirtualClock) -> None:
    ids = [t.instance_id for t in fleet.targets]
    sandbox.set_capacity("m5.large", "us-east-1a", 5)
    reservation = _reserve(ec2, 2)
    with pytest.raises(ClientError) as excinfo:
        ec2.modify_capacity_reservation(CapacityReservationId=reservation, InstanceCount=3)
    assert error_of(excinfo) == ICE
    ec2.modify_capacity_reservation(CapacityReservationId=reservation, InstanceCount=1)
    assert _described(ec2, reservation)["TotalInstanceCount"] == 1
    _stop(ec2, clock, ids[0])
    _stop(ec2, clock, ids[1])
    ec2.start_instances(InstanceIds=[ids[0], ids[1]])  # 1 reserved + 4 On-Demand room


def _stopped_in_reservation(ec2: Any, clock: VirtualClock, fleet: Fleet) -> tuple[str, str]:
    """A stopped target that targets a new reservation of one instance."""
    instance = fleet.targets[0].instance_id
    reservation = _reserve(ec2, 1)
    _stop(ec2, clock, instance)
    _target(ec2, instance, reservation)
    return instance, reservation


def test_an_instance_targeting_a_cancelled_reservation_cannot_start(
        sandbox: Sandbox, ec2: Any, fleet: Fleet, clock: VirtualClock) -> None:
    instance, reservation = _stopped_in_reservation(ec2, clock, fleet)
    assert ec2.cancel_capacity_reservation(CapacityReservationId=reservation)["Return"]
    assert _described(ec2, reservation)["State"] == "cancelled"
    with pytest.raises(ClientError) as excinfo:
        ec2.start_instances(InstanceIds=[instance])
    assert error_of(excinfo)[0] == "InvalidParameterValue"
    with pytest.raises(ClientError) as excinfo:
        ec2.cancel_capacity_reservation(CapacityReservationId=reservation)
    assert error_of(excinfo)[0] == "IncorrectState"
    ec2.modify_instance_capacity_reservation_attributes(
        InstanceId=instance,
        CapacityReservationSpecification={"CapacityReservationPreference": "open"})
    _start(ec2, clock, instance)


def test_cancelling_a_used_reservation_leaves_its_instance_running(
        sandbox: Sandbox, ec2: Any, fleet: Fleet, clock: VirtualClock) -> None:
    instance, reservation = _stopped_in_reservation(ec2, clock, fleet)
    _start(ec2, clock, instance)
    ec2.cancel_capacity_reservation(CapacityReservationId=reservation)
    clock.advance(60)
    assert state_of(ec2, instance) == "running"


def test_instance_settings_change_only_while_stopped(
        ec2: Any, fleet: Fleet) -> None:
    reservation = _reserve(ec2, 1)
    running = fleet.targets[0].instance_id
    with pytest.raises(ClientError) as excinfo:
        _target(ec2, running, reservation)
    assert error_of(excinfo) == (
        "IncorrectInstanceState", f"The instance '{running}' is not in the 'stopped' state.")


def test_an_unknown_reservation_is_not_found(ec2: Any, fleet: Fleet) -> None:
    with pytest.raises(ClientError) as excinfo:
        ec2.cancel_capacity_reservation(CapacityReservationId="cr-0123456789abcdef0")
    assert error_of(excinfo)[0] == "InvalidCapacityReservationId.NotFound"


def test_reservations_are_listed_by_tag_and_state(ec2: Any, fleet: Fleet) -> None:
    ours = ec2.create_capacity_reservation(
        InstanceType="m5.large", InstancePlatform="Windows", AvailabilityZone="us-east-1a",
        InstanceCount=1, InstanceMatchCriteria="targeted",
        TagSpecifications=[{"ResourceType": "capacity-reservation",
                            "Tags": [{"Key": "remediate:run", "Value": "r1"}]}],
    )["CapacityReservation"]["CapacityReservationId"]
    _reserve(ec2, 1)
    listed = ec2.describe_capacity_reservations(
        Filters=[{"Name": "tag:remediate:run", "Values": ["r1"]},
                 {"Name": "state", "Values": ["active"]}])["CapacityReservations"]
    assert [r["CapacityReservationId"] for r in listed] == [ours]


def test_launching_into_an_exhausted_az_fails(
        sandbox: Sandbox, ec2: Any, fleet: Fleet) -> None:
    sandbox.set_capacity("m5.large", "us-east-1a", 3)
    image = fleet.targets[0].image_id
    before = len(ec2.describe_instances()["Reservations"])
    with pytest.raises(ClientError) as excinfo:
        ec2.run_instances(ImageId=image, InstanceType="m5.large", MinCount=1, MaxCount=1,
                          Placement={"AvailabilityZone": "us-east-1a"})
    assert error_of(excinfo) == ICE
    assert len(ec2.describe_instances()["Reservations"]) == before
    ec2.run_instances(ImageId=image, InstanceType="m5.large", MinCount=1, MaxCount=1,
                      Placement={"AvailabilityZone": "us-east-1b"})


def test_a_held_reservation_opened_before_the_start_takes_an_untargeted_instance(
        sandbox: Sandbox, ec2: Any, fleet: Fleet, clock: VirtualClock) -> None:
    # Held targeted (nothing else uses it) while the instance is stopped, opened just
    # before the start: the instance runs in it without its own settings changing.
    instance = fleet.targets[0].instance_id
    sandbox.set_capacity("m5.large", "us-east-1a", 4)
    reservation = _reserve(ec2, 1)
    _stop(ec2, clock, instance)
    sandbox.set_capacity("m5.large", "us-east-1a", 0)
    with pytest.raises(ClientError) as excinfo:
        ec2.start_instances(InstanceIds=[instance])  # targeted: not for an open instance
    assert error_of(excinfo) == ICE
    ec2.modify_capacity_reservation(CapacityReservationId=reservation,
                                    InstanceMatchCriteria="open")
    _start(ec2, clock, instance)
    described = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
    assert described["CapacityReservationId"] == reservation
    assert described["CapacityReservationSpecification"] == {
        "CapacityReservationPreference": "open"}


def test_instances_show_their_platform_as_capacity_reservations_name_it(
        ec2: Any, fleet: Fleet) -> None:
    described = ec2.describe_instances(InstanceIds=[fleet.targets[0].instance_id])
    assert described["Reservations"][0]["Instances"][0]["PlatformDetails"] == "Windows"
