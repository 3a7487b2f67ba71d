"""Several accounts in one sandbox: fleets, clients and token buckets apart, as in AWS."""

from __future__ import annotations

from botocore.exceptions import ClientError
from botocore_support import NO_RETRIES

from remediate.clock import VirtualClock
from remediate.sandbox import Bucket, FleetSpec, Sandbox, ThrottlePolicy
from remediate.sandbox.fleet import DEFAULT_ACCOUNT

OTHER = "210987654321"


def test_a_fleet_built_in_another_account_is_seen_only_there() -> None:
    with Sandbox(clock=VirtualClock()) as sandbox:
        home = sandbox.build_fleet(FleetSpec(plain=2))
        away = sandbox.build_fleet(FleetSpec(plain=3, account=OTHER))
        seen = {account: {i["InstanceId"] for r in sandbox.client(
            "ec2", account=account).describe_instances()["Reservations"]
            for i in r["Instances"]} for account in (DEFAULT_ACCOUNT, OTHER)}
        caller = sandbox.client("sts", account=OTHER).get_caller_identity()["Account"]

    assert {t.account for t in away.targets} == {OTHER}
    assert {t.account for t in home.targets} == {DEFAULT_ACCOUNT}
    assert seen[OTHER] == set(away.instance_ids())
    assert seen[DEFAULT_ACCOUNT] == set(home.instance_ids())
    assert caller == OTHER


def test_each_account_has_its_own_buckets() -> None:
    with Sandbox(clock=VirtualClock()) as sandbox:
        sandbox.build_fleet(FleetSpec(plain=1))
        sandbox.build_fleet(FleetSpec(plain=1, account=OTHER))
        sandbox.set_throttle(ThrottlePolicy(buckets={"ec2:DescribeVolumes": Bucket(1, 0.001)}))
        home, away = (sandbox.client("ec2", account=a, config=NO_RETRIES)
                      for a in (DEFAULT_ACCOUNT, OTHER))

        home.describe_volumes()
        away.describe_volumes()  # its own bucket: not throttled by the home account's call
        try:
            home.describe_volumes()
        except ClientError as error:
            code = error.response["Error"]["Code"]

    assert code == "RequestLimitExceeded"
