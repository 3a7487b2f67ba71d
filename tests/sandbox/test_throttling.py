from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from remediate.clock import VirtualClock
from remediate.sandbox import Bucket, Fleet, Neighbour, Sandbox, ThrottlePolicy
from remediate.sandbox.throttling import Throttle, ec2_request_bucket, ec2_resource_bucket


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


def test_random_errors_spare_the_operations_named(
    sandbox: Sandbox, ec2: Any, fleet: Fleet
) -> None:
    sandbox.set_throttle(ThrottlePolicy(error_rate=1.0, spare=frozenset({"ec2:DescribeTags"})))
    ec2.describe_tags()  # never throttled
    with pytest.raises(ClientError, match="RequestLimitExceeded"):
        ec2.describe_volumes(MaxResults=5)
    assert sandbox.api_call_counts(throttled=True) == {("ec2", "DescribeVolumes"): 1}


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


def test_ec2_buckets_are_the_catalogues_per_api_under_the_documented_model() -> None:
    filtered = {"InstanceId.1": "i"}
    assert ec2_request_bucket("DescribeInstances", {}) == (
        "ec2:DescribeInstances (unfiltered)", Bucket(50, 10))
    assert ec2_request_bucket("DescribeInstances", filtered) == (
        "ec2:DescribeInstances", Bucket(100, 20))
    assert ec2_request_bucket("DescribeImages", {}) == ("ec2:DescribeImages", Bucket(100, 20))
    assert ec2_request_bucket("AttachVolume", {}) == ("ec2:AttachVolume", Bucket(50, 5))
    assert ec2_request_bucket("DetachVolume", {}) == ("ec2:DetachVolume", Bucket(50, 5))
    assert ec2_request_bucket("CreateReplaceRootVolumeTask", {}) == (
        "ec2:CreateReplaceRootVolumeTask", Bucket(50, 5))
    assert ec2_request_bucket("CreateSnapshot", {}) == ("ec2:CreateSnapshot", Bucket(100, 5))
    assert ec2_request_bucket("CreateTags", {}) == ("ec2:CreateTags", Bucket(100, 10))
    assert ec2_request_bucket("StartInstances", {}) == ("ec2:StartInstances", Bucket(5, 2))
    assert ec2_request_bucket("RunInstances", {}) == ("ec2:RunInstances", Bucket(5, 2))
    # An API remediate does not call: sized by its name's category.
    assert ec2_request_bucket("ModifyVolume", {}) == ("ec2:ModifyVolume", Bucket(50, 5))
    assert ec2_resource_bucket("StartInstances") == (
        "ec2:resource:StartInstances", Bucket(1000, 2))
    assert ec2_resource_bucket("TerminateInstances") == (
        "ec2:resource:TerminateInstances", Bucket(1000, 20))
    assert ec2_resource_bucket("AttachVolume") is None


def test_the_shared_category_model_shares_one_bucket_per_category() -> None:
    shared = "shared-category"
    assert ec2_request_bucket("AttachVolume", {}, shared) == ("ec2:ec2.mutating", Bucket(50, 5))
    assert ec2_request_bucket("DetachVolume", {}, shared) == ("ec2:ec2.mutating", Bucket(50, 5))
    assert ec2_request_bucket("CreateSnapshot", {}, shared) == (
        "ec2:ec2.create-snapshot", Bucket(100, 5))


def _delete_tags(ec2: Any, instance: str, times: int) -> list[str]:
    outcomes = []
    for _ in range(times):
        try:
            ec2.delete_tags(Resources=[instance], Tags=[{"Key": "nothing-here"}])
            outcomes.append("ok")
        except ClientError as error:
            outcomes.append(error.response["Error"]["Code"])
    return outcomes


@pytest.mark.parametrize(("model", "reboot"), [("documented", "ok"),
                                               ("shared-category", "RequestLimitExceeded")])
def test_an_empty_bucket_throttles_only_its_own_api_as_documented(
    sandbox: Sandbox, ec2: Any, fleet: Fleet, model: str, reboot: str
) -> None:
    sandbox.set_throttle(ThrottlePolicy.aws_defaults(model=model))
    instance = fleet.instance_ids()[0]

    assert _delete_tags(ec2, instance, 51) == ["ok"] * 50 + ["RequestLimitExceeded"]
    try:
        ec2.reboot_instances(InstanceIds=[instance])
        outcome = "ok"
    except ClientError as error:
        outcome = error.response["Error"]["Code"]

    # AWS's page: "requests for other APIs are not affected"; the older reading shared
    # the mutating category's bucket.
    assert outcome == reboot


def test_a_neighbour_spends_its_share_of_the_refill(
    sandbox: Sandbox, ec2: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    sandbox.set_throttle(ThrottlePolicy.aws_defaults(neighbour=Neighbour(0.3)))
    instance = fleet.instance_ids()[0]
    assert _delete_tags(ec2, instance, 51)[-1] == "RequestLimitExceeded"

    clock.advance(10)  # 50 tokens at 5/s; the neighbour took 15 of them

    assert _delete_tags(ec2, instance, 36) == ["ok"] * 35 + ["RequestLimitExceeded"]


def test_a_neighbour_spends_only_the_buckets_of_the_apis_chosen() -> None:
    throttle = Throttle(ThrottlePolicy.aws_defaults(
        neighbour=Neighbour(0.5, frozenset({"ec2:AttachVolume"}))))
    for api in ("AttachVolume", "DetachVolume"):
        assert all(throttle.admit("ec2", api, "r", {}, 0.0) for _ in range(50))
        assert not throttle.admit("ec2", api, "r", {}, 0.0)

    attach = sum(throttle.admit("ec2", "AttachVolume", "r", {}, 10.0) for _ in range(60))
    detach = sum(throttle.admit("ec2", "DetachVolume", "r", {}, 10.0) for _ in range(60))

    assert (attach, detach) == (25, 50)


def test_a_neighbours_share_is_a_fraction() -> None:
    with pytest.raises(ValueError, match=r"a neighbour's share is in \[0, 1\), got 1.0"):
        Neighbour(1.0)
    with pytest.raises(ValueError, match="throttle model 'per-api': expected one of "
                                         "documented, shared-category"):
        ThrottlePolicy(model="per-api")


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
