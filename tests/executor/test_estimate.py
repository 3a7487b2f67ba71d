"""The dry run's duration estimate: bucket time versus waves of settling."""

from __future__ import annotations

import pytest

from remediate.actions.contract import Target
from remediate.aws.apis import Bucket
from remediate.aws.ratelimit import RateLimiter
from remediate.clock import VirtualClock
from remediate.executor.estimate import SETTLE_SECONDS, estimate


def targets(count: int, region: str = "us-east-1") -> list[Target]:
    return [Target("ec2-instance", f"i-{n}", region) for n in range(count)]


def test_unbatchable_calls_are_bound_by_their_bucket() -> None:
    # 1,000 targets, two detaches and two attaches each: 2,000 requests on each API's own
    # 50/5 bucket (AWS evaluates each API individually).
    apis = ["ec2:DetachVolume", "ec2:AttachVolume"] * 2
    found = estimate([(t, apis) for t in targets(1000)], RateLimiter(VirtualClock()), 1000)

    assert found.bucket_seconds == {"default/us-east-1/ec2.DetachVolume": (2000 - 50) / 5,
                                    "default/us-east-1/ec2.AttachVolume": (2000 - 50) / 5}
    assert found.path_seconds == 4 * SETTLE_SECONDS["ec2:AttachVolume"]
    assert found.seconds == pytest.approx(390.0)


def test_batched_calls_merge_but_spend_the_resource_bucket_per_instance() -> None:
    limiter = RateLimiter(VirtualClock(), {"ec2.start-instances-resource": Bucket(100, 2)})

    found = estimate([(t, ["ec2:StartInstances"]) for t in targets(500)], limiter, 50)

    assert found.bucket_seconds["default/us-east-1/ec2.StartInstances"] == (10 - 5) / 2
    assert found.bucket_seconds["default/us-east-1/ec2.start-instances-resource"] == 200.0
    assert found.waves == 10
    assert found.seconds == 10 * SETTLE_SECONDS["ec2:StartInstances"]


def test_regions_have_their_own_buckets_and_unknown_apis_only_add_nothing() -> None:
    plans = [(t, ["ec2:DetachVolume", "ec2:Mystery"])
             for t in targets(60, "us-east-1") + targets(60, "eu-west-1")]

    found = estimate(plans, RateLimiter(VirtualClock()), 200)

    assert found.bucket_seconds == {"default/us-east-1/ec2.DetachVolume": 2.0,
                                    "default/eu-west-1/ec2.DetachVolume": 2.0}
    assert found.seconds == 15.0


def test_nothing_to_do_takes_no_time() -> None:
    assert estimate([], RateLimiter(VirtualClock()), 10).seconds == 0.0
