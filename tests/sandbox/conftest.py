from __future__ import annotations

from typing import Any

import pytest
from botocore_support import NO_RETRIES

from remediate.sandbox import Fleet, FleetSpec, Sandbox

SMALL_FLEET = FleetSpec(
    plain=4,
    instance_store=1,
    spot_one_time=1,
    spot_persistent=1,
    stop_protected=1,
    encrypted_bad_key=1,
    marketplace=1,
    hibernation=1,
    reboot_fixable=1,
    with_eip=1,
    workspaces=4,
    azs=2,
)


@pytest.fixture
def fleet(sandbox: Sandbox) -> Fleet:
    return sandbox.build_fleet(SMALL_FLEET)


@pytest.fixture
def ec2(sandbox: Sandbox) -> Any:
    return sandbox.client("ec2", config=NO_RETRIES)


@pytest.fixture
def ssm(sandbox: Sandbox) -> Any:
    return sandbox.client("ssm", config=NO_RETRIES)


@pytest.fixture
def workspaces(sandbox: Sandbox) -> Any:
    return sandbox.client("workspaces", config=NO_RETRIES)


def state_of(ec2: Any, instance_id: str) -> str:
    described = ec2.describe_instances(InstanceIds=[instance_id])
    return str(described["Reservations"][0]["Instances"][0]["State"]["Name"])


def status_of(ec2: Any, instance_id: str) -> tuple[str, str]:
    statuses = ec2.describe_instance_status(InstanceIds=[instance_id], IncludeAllInstances=True)
    status = statuses["InstanceStatuses"][0]
    return status["InstanceStatus"]["Status"], status["SystemStatus"]["Status"]


def volume(ec2: Any, volume_id: str) -> dict[str, Any]:
    found: dict[str, Any] = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    return found


def error_of(excinfo: pytest.ExceptionInfo[Any]) -> tuple[str, str]:
    error = excinfo.value.response["Error"]
    return error["Code"], error["Message"]
