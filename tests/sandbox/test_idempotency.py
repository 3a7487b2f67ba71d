"""EC2 client tokens as AWS documents them ("Ensuring idempotency in Amazon EC2 API
requests"), and listings that lag behind a create (eventual consistency)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from remediate.clock import VirtualClock
from remediate.sandbox import Durations, Fleet, FleetSpec, Sandbox
from remediate.sandbox.idempotency import token_parameter

from .conftest import NO_RETRIES, error_of

MISMATCH = ("IdempotentParameterMismatch", "Arguments on this idempotent request are "
            "inconsistent with arguments used in previous request(s).")


def _launch(ec2: Any, fleet: Fleet, token: str, **extra: Any) -> dict[str, Any]:
    image = fleet.regions["us-east-1"].rescue_windows_ami
    request = {"ImageId": image, "MinCount": 1, "MaxCount": 1, "InstanceType": "t3.medium",
               "ClientToken": token, **extra}
    return dict(ec2.run_instances(**request))


def _live_instances(ec2: Any) -> set[str]:
    found = ec2.describe_instances(Filters=[
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    return {i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]}


def test_token_parameters_come_from_botocores_model() -> None:
    assert token_parameter("RunInstances") == "ClientToken"
    assert token_parameter("CreateReplaceRootVolumeTask") == "ClientToken"
    assert token_parameter("AttachVolume") is None
    assert token_parameter("NoSuchOperation") is None


def test_run_instances_repeated_with_its_token_returns_the_first_instance(
        sandbox: Sandbox, ec2: Any) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=1, azs=1))
    before = _live_instances(ec2)

    first = _launch(ec2, fleet, "launch-1")
    again = _launch(ec2, fleet, "launch-1")

    [instance] = first["Instances"]
    assert [i["InstanceId"] for i in again["Instances"]] == [instance["InstanceId"]]
    assert again["ReservationId"] == first["ReservationId"]
    assert _live_instances(ec2) == before | {instance["InstanceId"]}
    # Another token is another launch.
    other = _launch(ec2, fleet, "launch-2")["Instances"][0]["InstanceId"]
    assert _live_instances(ec2) == before | {instance["InstanceId"], other}


def test_a_token_used_again_with_other_parameters_is_refused(
        sandbox: Sandbox, ec2: Any) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=1, azs=1))
    _launch(ec2, fleet, "launch-1")
    before = _live_instances(ec2)

    with pytest.raises(ClientError) as excinfo:
        _launch(ec2, fleet, "launch-1", InstanceType="m5.large")

    assert error_of(excinfo) == MISMATCH
    assert _live_instances(ec2) == before


def test_a_token_is_per_region(sandbox: Sandbox) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=1, azs=1, regions=("us-east-1", "eu-west-1")))
    east = sandbox.client("ec2", "us-east-1", config=NO_RETRIES)
    west = sandbox.client("ec2", "eu-west-1", config=NO_RETRIES)
    ids = []
    for region, ec2 in (("us-east-1", east), ("eu-west-1", west)):
        image = fleet.regions[region].rescue_windows_ami
        ids.append(ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1,
                                     ClientToken="same")["Instances"][0]["InstanceId"])
    assert ids[0] != ids[1]


def test_replace_root_task_repeated_with_its_token_is_the_same_task(
        sandbox: Sandbox, ec2: Any, clock: VirtualClock) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=1, azs=1))
    instance_id = fleet.targets[0].instance_id

    first = ec2.create_replace_root_volume_task(InstanceId=instance_id, ClientToken="rr-1")
    clock.advance(5)
    # Before the fix: "A root volume replacement task is already in progress".
    again = ec2.create_replace_root_volume_task(InstanceId=instance_id, ClientToken="rr-1")

    task_id = first["ReplaceRootVolumeTask"]["ReplaceRootVolumeTaskId"]
    assert again["ReplaceRootVolumeTask"]["ReplaceRootVolumeTaskId"] == task_id
    tasks = ec2.describe_replace_root_volume_tasks(Filters=[
        {"Name": "instance-id", "Values": [instance_id]}])["ReplaceRootVolumeTasks"]
    assert [t["ReplaceRootVolumeTaskId"] for t in tasks] == [task_id]
    with pytest.raises(ClientError) as excinfo:
        ec2.create_replace_root_volume_task(InstanceId=instance_id, ClientToken="rr-1",
                                            DeleteReplacedRootVolume=True)
    assert error_of(excinfo) == MISMATCH
    # A new token while the first task runs is AWS's own refusal, as before.
    with pytest.raises(ClientError) as excinfo:
        ec2.create_replace_root_volume_task(InstanceId=instance_id, ClientToken="rr-2")
    assert error_of(excinfo)[0] == "IncorrectState"


def test_a_lost_reply_keeps_the_token_so_the_resend_gets_the_first_answer(
        sandbox: Sandbox, ec2: Any) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=1, azs=1))
    before = _live_instances(ec2)
    sandbox.lose_replies("RunInstances", times=1)

    with pytest.raises(ClientError) as excinfo:
        _launch(ec2, fleet, "launch-1")
    resent = _launch(ec2, fleet, "launch-1")

    assert error_of(excinfo)[0] == "InternalError"
    launched = _live_instances(ec2) - before
    assert launched == {resent["Instances"][0]["InstanceId"]}


@pytest.fixture
def lagging(clock: VirtualClock) -> Iterator[tuple[Sandbox, Fleet]]:
    """A sandbox whose listings show a new snapshot or command 30 s after its create."""
    with Sandbox(clock=clock, durations=Durations(listing_lag=30.0)) as sandbox:
        yield sandbox, sandbox.build_fleet(FleetSpec(plain=1, azs=1))


def test_listings_show_a_new_snapshot_only_after_the_listing_lag(
        lagging: tuple[Sandbox, Fleet], clock: VirtualClock) -> None:
    sandbox, fleet = lagging
    ec2 = sandbox.client("ec2", config=NO_RETRIES)
    volume_id = fleet.targets[0].root_volume_id
    snapshot_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]

    def listed() -> list[str]:
        found = ec2.describe_snapshots(OwnerIds=["self"], Filters=[
            {"Name": "volume-id", "Values": [volume_id]}])["Snapshots"]
        return [s["SnapshotId"] for s in found]

    assert listed() == []
    # Read by its id, it is there at once.
    by_id = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    assert [s["SnapshotId"] for s in by_id] == [snapshot_id]
    clock.advance(29)
    assert listed() == []
    clock.advance(1)
    assert listed() == [snapshot_id]


def test_listings_show_a_new_command_only_after_the_listing_lag(
        lagging: tuple[Sandbox, Fleet], clock: VirtualClock) -> None:
    sandbox, fleet = lagging
    ssm = sandbox.client("ssm", config=NO_RETRIES)
    instance_id = fleet.targets[0].instance_id
    command_id = ssm.send_command(InstanceIds=[instance_id],
                                  DocumentName="AWS-RunPowerShellScript",
                                  Parameters={"commands": ["echo hi"]})["Command"]["CommandId"]
    invocations = ssm.list_command_invocations

    assert invocations(InstanceId=instance_id)["CommandInvocations"] == []
    assert [i["CommandId"] for i in invocations(CommandId=command_id)[
        "CommandInvocations"]] == [command_id]
    clock.advance(30)
    assert [i["CommandId"] for i in invocations(InstanceId=instance_id)[
        "CommandInvocations"]] == [command_id]
