from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from remediate.clock import VirtualClock
from remediate.sandbox import Bucket, Fleet, Sandbox, ThrottlePolicy
from remediate.sandbox.throttling import Throttle, ec2_bucket_class


def _outcomes(ec2: Any, calls: int) -> list[str]:
    outcomes = []
    for _ in range(calls):
        try:
            ec2.describe_volumes(MaxResults=5)
            outcomes.append("ok")
        except ClientError as error:
            outcomes.append(error.response["Error"]["Code"])
    return outcomes


def test_random_errors_are_reproducible_and_counted(
    sandbox: Sandbox, ec2: Any, fleet: Fleet
) -> None:
    sandbox.set_throttle(ThrottlePolicy.random_errors(0.5, seed=7))
    first = _outcomes(ec2, 40)
    sandbox.set_throttle(ThrottlePolicy.random_errors(0.5, seed=7))
    second = _outcomes(ec2, 40)
    assert first == second
    assert set(first) == {"ok", "RequestLimitExceeded"}
    throttled = sandbox.api_call_counts(throttled=True)[("ec2", "DescribeVolumes")]
    assert throttled == 2 * first.count("RequestLimitExceeded")


def test_run_instances_bucket_is_aws_default(
    sandbox: Sandbox, ec2: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    sandbox.set_throttle(ThrottlePolicy.aws_defaults())
    setup = fleet.regions["us-east-1"]
    args = {
        "ImageId": setup.rescue_windows_ami,
        "MinCount": 1,
        "MaxCount": 1,
        "SubnetId": next(iter(setup.subnets.values())),
    }
    for _ in range(5):
        ec2.run_instances(**args)
    with pytest.raises(ClientError) as excinfo:
        ec2.run_instances(**args)
    assert excinfo.value.response["Error"]["Code"] == "RequestLimitExceeded"
    clock.advance(1)
    ec2.run_instances(**args)
    ec2.run_instances(**args)
    with pytest.raises(ClientError):
        ec2.run_instances(**args)


def test_ssm_buckets_raise_throttling_exception(
    sandbox: Sandbox, ssm: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    sandbox.set_throttle(ThrottlePolicy(buckets={"ssm:ListCommands": Bucket(2, 1)}))
    ssm.list_commands()
    ssm.list_commands()
    with pytest.raises(ClientError) as excinfo:
        ssm.list_commands()
    assert excinfo.value.response["Error"]["Code"] == "ThrottlingException"
    clock.advance(1)
    ssm.list_commands()


def test_workspaces_can_be_throttled(sandbox: Sandbox, workspaces: Any, fleet: Fleet) -> None:
    sandbox.set_throttle(ThrottlePolicy(buckets={"workspaces:*": Bucket(1, 0.1)}))
    workspaces.describe_workspaces()
    with pytest.raises(ClientError) as excinfo:
        workspaces.describe_workspaces()
    assert excinfo.value.response["Error"]["Code"] == "ThrottlingException"


def test_start_stop_resource_bucket_counts_instances() -> None:
    throttle = Throttle(ThrottlePolicy.aws_defaults())
    thousand = {f"InstanceId.{n}": "i-x" for n in range(1, 1001)}
    assert throttle.admit("ec2", "StopInstances", "us-east-1", thousand, 0.0)
    assert not throttle.admit("ec2", "StopInstances", "us-east-1", {"InstanceId.1": "i"}, 0.0)
    assert throttle.admit("ec2", "StopInstances", "us-east-1", {"InstanceId.1": "i"}, 1.0)
    assert throttle.admit("ec2", "StopInstances", "eu-west-1", thousand, 1.0)


def test_ec2_bucket_classes() -> None:
    assert ec2_bucket_class("DescribeInstances", {}) == "unfiltered-describe"
    assert ec2_bucket_class("DescribeInstances", {"InstanceId.1": "i"}) == "non-mutating"
    assert ec2_bucket_class("DescribeImages", {}) == "non-mutating"
    assert ec2_bucket_class("AttachVolume", {}) == "mutating"
    assert ec2_bucket_class("CreateReplaceRootVolumeTask", {}) == "mutating"
    assert ec2_bucket_class("CreateSnapshot", {}) == "create-storage"
    assert ec2_bucket_class("CreateTags", {}) == "create-tags"
    assert ec2_bucket_class("StartInstances", {}) == "run-start"


def test_api_calls_show_a_dry_run_made_no_mutating_call(
    sandbox: Sandbox, ec2: Any, fleet: Fleet
) -> None:
    assert sandbox.api_calls == []
    ec2.describe_instances(InstanceIds=fleet.instance_ids()[:3])
    ec2.describe_instance_status(InstanceIds=fleet.instance_ids()[:3])
    assert [c.operation for c in sandbox.api_calls] == [
        "DescribeInstances",
        "DescribeInstanceStatus",
    ]
    assert not any(c.mutating for c in sandbox.api_calls)
