"""EC2 behaviour the sandbox adds to moto: filters, dry runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from remediate.clock import VirtualClock
from remediate.sandbox import FleetSpec, Sandbox


def test_platform_filter_selects_windows_instances() -> None:
    with Sandbox(clock=VirtualClock()) as sb:
        fleet = sb.build_fleet(FleetSpec(plain=2, azs=1))
        found = sb.client("ec2").describe_instances(
            Filters=[{"Name": "platform", "Values": ["windows"]}])
        ids = {i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]}
        assert ids == set(fleet.instance_ids())


def test_a_dry_run_request_is_judged_on_permissions_only() -> None:
    def code_of(call: Callable[[], Any]) -> str:
        with pytest.raises(ClientError) as caught:
            call()
        return str(caught.value.response["Error"]["Code"])

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
