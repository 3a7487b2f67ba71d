"""EC2 behaviour the sandbox adds to moto: filters, dry runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from remediate.clock import VirtualClock
from remediate.sandbox import FleetSpec, Sandbox

from .conftest import error_of


def test_platform_filter_selects_windows_instances() -> None:
    with Sandbox(clock=VirtualClock()) as sb:
        fleet = sb.build_fleet(FleetSpec(plain=2, azs=1))
        found = sb.client("ec2").describe_instances(
            Filters=[{"Name": "platform", "Values": ["windows"]}])
        ids = {i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]}
        assert ids == set(fleet.instance_ids())


def test_a_filter_aws_does_not_have_is_invalid_as_aws_says() -> None:
    with Sandbox(clock=VirtualClock()) as sb:
        fleet = sb.build_fleet(FleetSpec(plain=1, azs=1))
        ec2 = sb.client("ec2")

        def describe(*names: str) -> Callable[[], Any]:
            return lambda: ec2.describe_instances(
                Filters=[{"Name": name, "Values": ["1"]} for name in names])

        assert failure(describe("instance-type", "bogus-filter")) == (
            "InvalidParameterValue", "The filter 'bogus-filter' is invalid")
        assert describe("instance-type", "tag:anything")()["Reservations"] == []
        found = ec2.describe_instances(Filters=[
            {"Name": "instance-state-name", "Values": ["running"]},
            {"Name": "tag:incident", "Values": ["crowdstrike-2024-07-19"]}])["Reservations"]
        assert [i["InstanceId"] for r in found for i in r["Instances"]] == fleet.instance_ids()


def failure(call: Callable[[], Any]) -> tuple[str, str]:
    """The AWS error code and message ``call`` fails with."""
    with pytest.raises(ClientError) as caught:
        call()
    return error_of(caught)


def code_of(call: Callable[[], Any]) -> str:
    return failure(call)[0]


def test_a_dry_run_request_is_judged_on_permissions_only() -> None:
    with Sandbox(clock=VirtualClock()) as sb:
        fleet = sb.build_fleet(FleetSpec(plain=1, azs=1))
        [target] = fleet.targets
        ec2 = sb.client("ec2")
        # Detaching a running instance's root is refused; asked with DryRun, AWS only
        # says whether the caller may, and nothing happens.
        detach = lambda: ec2.detach_volume(VolumeId=target.root_volume_id, DryRun=True)  # noqa: E731
        assert code_of(detach) == "DryRunOperation"
        sb.fail("DetachVolume", "UnauthorizedOperation", "You are not authorized.")
        assert code_of(detach) == "UnauthorizedOperation"
        [call, denied] = sb.api_calls[-2:]
        assert call.dry_run and not call.mutating and denied.dry_run
        volume = ec2.describe_volumes(VolumeIds=[target.root_volume_id])["Volumes"][0]
        assert volume["Attachments"][0]["State"] == "attached"


def test_a_dry_run_launch_checks_its_image_as_aws_does() -> None:
    with Sandbox(clock=VirtualClock()) as sb:
        fleet = sb.build_fleet(FleetSpec(plain=1, azs=1))
        ec2 = sb.client("ec2")

        def launch(image_id: str) -> Callable[[], Any]:
            return lambda: ec2.run_instances(ImageId=image_id, InstanceType="t3.medium",
                                             MinCount=1, MaxCount=1, DryRun=True)

        rescue = fleet.regions["us-east-1"].rescue_windows_ami
        assert code_of(launch(rescue)) == "DryRunOperation"
        assert failure(launch("ami-12345678")) == (
            "InvalidAMIID.NotFound", "The image id '[ami-12345678]' does not exist")
        assert failure(launch("windows-2022")) == (
            "InvalidAMIID.Malformed", 'Invalid id: "windows-2022" (expecting "ami-...")')
        sb.fail("RunInstances", "UnauthorizedOperation", "You are not authorized.")
        assert code_of(launch("ami-12345678")) == "UnauthorizedOperation"  # permissions first
        sb.clear_faults()
        launched = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
        assert [i["InstanceId"] for i in launched] == fleet.instance_ids()
