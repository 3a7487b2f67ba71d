from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from remediate.clock import VirtualClock
from remediate.sandbox import Fleet

from .conftest import error_of


def _rescue(ec2: Any, fleet: Fleet, clock: VirtualClock, linux: bool = False) -> str:
    setup = fleet.regions["us-east-1"]
    rescue = ec2.run_instances(
        ImageId=setup.rescue_linux_ami if linux else setup.rescue_windows_ami,
        InstanceType="m5.large",
        MinCount=1,
        MaxCount=1,
        SubnetId=next(iter(setup.subnets.values())),
    )["Instances"][0]["InstanceId"]
    clock.advance(120)
    return str(rescue)


def test_only_the_named_instances_get_invocations(
    ec2: Any, ssm: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    rescue = _rescue(ec2, fleet, clock)
    command = ssm.send_command(
        InstanceIds=[rescue],
        DocumentName="AWS-RunPowerShellScript",
        Parameters={"commands": ["hostname"]},
    )["Command"]
    assert command["InstanceIds"] == [rescue]
    invocations = ssm.list_command_invocations(CommandId=command["CommandId"])
    assert [i["InstanceId"] for i in invocations["CommandInvocations"]] == [rescue]


def test_a_command_runs_for_its_duration(
    ec2: Any, ssm: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    rescue = _rescue(ec2, fleet, clock)
    command_id = ssm.send_command(
        InstanceIds=[rescue],
        DocumentName="AWS-RunPowerShellScript",
        Parameters={"commands": ["hostname"]},
    )["Command"]["CommandId"]
    invocation = ssm.get_command_invocation(CommandId=command_id, InstanceId=rescue)
    assert invocation["Status"] == "InProgress"
    clock.advance(19)
    assert ssm.list_commands(CommandId=command_id)["Commands"][0]["Status"] == "InProgress"
    clock.advance(1)
    invocation = ssm.get_command_invocation(CommandId=command_id, InstanceId=rescue)
    assert (invocation["Status"], invocation["ResponseCode"]) == ("Success", 0)
    command = ssm.list_commands(CommandId=command_id)["Commands"][0]
    assert (command["Status"], command["CompletedCount"], command["ErrorCount"]) == (
        "Success",
        1,
        0,
    )
    detailed = ssm.list_command_invocations(CommandId=command_id, Details=True)
    assert detailed["CommandInvocations"][0]["CommandPlugins"][0]["Name"] == (
        "aws:runPowerShellScript"
    )


def test_boot_looping_targets_are_not_online(
    ec2: Any, ssm: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    rescue = _rescue(ec2, fleet, clock)
    target = fleet.by_kind("plain")[0].instance_id
    listed = ssm.describe_instance_information(
        Filters=[{"Key": "InstanceIds", "Values": [rescue, target]}]
    )["InstanceInformationList"]
    assert {row["InstanceId"]: row["PingStatus"] for row in listed} == {
        rescue: "Online",
        target: "ConnectionLost",
    }
    online = ssm.describe_instance_information(
        Filters=[{"Key": "PingStatus", "Values": ["Online"]}]
    )["InstanceInformationList"]
    assert [row["InstanceId"] for row in online] == [rescue]


def test_commands_to_a_broken_target_time_out_undelivered(
    ssm: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    target = fleet.by_kind("plain")[0].instance_id
    command_id = ssm.send_command(
        InstanceIds=[target],
        DocumentName="AWS-RunPowerShellScript",
        Parameters={"commands": ["hostname"]},
        TimeoutSeconds=600,
    )["Command"]["CommandId"]
    clock.advance(599)
    assert ssm.get_command_invocation(CommandId=command_id, InstanceId=target)["Status"] == (
        "Pending"
    )
    clock.advance(1)
    assert ssm.get_command_invocation(CommandId=command_id, InstanceId=target)["Status"] == (
        "DeliveryTimedOut"
    )
    command = ssm.list_commands(CommandId=command_id)["Commands"][0]
    assert (command["Status"], command["DeliveryTimedOutCount"]) == ("DeliveryTimedOut", 1)


def test_a_pending_command_runs_once_the_instance_is_online(
    ec2: Any, ssm: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    target = fleet.by_kind("reboot_fixable")[0].instance_id
    command_id = ssm.send_command(
        InstanceIds=[target],
        DocumentName="AWS-RunPowerShellScript",
        Parameters={"commands": ["hostname"]},
    )["Command"]["CommandId"]
    for _ in range(2):
        ec2.reboot_instances(InstanceIds=[target])
        clock.advance(60)
    assert ssm.get_command_invocation(CommandId=command_id, InstanceId=target)["Status"] == (
        "InProgress"
    )
    clock.advance(20)
    assert ssm.get_command_invocation(CommandId=command_id, InstanceId=target)["Status"] == (
        "Success"
    )


def test_terminated_instances_are_invalid_targets(
    ec2: Any, ssm: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    rescue = _rescue(ec2, fleet, clock)
    ec2.terminate_instances(InstanceIds=[rescue])
    with pytest.raises(ClientError) as excinfo:
        ssm.send_command(
            InstanceIds=[rescue],
            DocumentName="AWS-RunPowerShellScript",
            Parameters={"commands": ["hostname"]},
        )
    assert error_of(excinfo) == (
        "InvalidInstanceId",
        f"Instances [[{rescue}]] not in a valid state for account 123456789012",
    )


def test_powershell_on_a_linux_rescue_is_unsupported(
    ec2: Any, ssm: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    rescue = _rescue(ec2, fleet, clock, linux=True)
    with pytest.raises(ClientError) as excinfo:
        ssm.send_command(
            InstanceIds=[rescue],
            DocumentName="AWS-RunPowerShellScript",
            Parameters={"commands": ["hostname"]},
        )
    assert error_of(excinfo)[0] == "UnsupportedPlatformType"
    command = ssm.send_command(
        InstanceIds=[rescue],
        DocumentName="AWS-RunShellScript",
        Parameters={"commands": ["ntfsfix /dev/nvme1n1p1"]},
    )["Command"]
    assert command["InstanceIds"] == [rescue]
