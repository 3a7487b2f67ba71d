"""Token buckets on a VirtualClock: burst, refill, one bucket per EC2 API, resource
buckets, overrides by category or API, emptying on throttle."""

from __future__ import annotations

import pytest

from remediate.aws.apis import DEFAULT_BUCKETS, Bucket, operation
from remediate.aws.ratelimit import RateLimiter, TokenBucket
from remediate.clock import VirtualClock


def test_a_full_bucket_bursts_its_capacity_then_waits_for_refill() -> None:
    clock = VirtualClock()
    bucket = TokenBucket(Bucket(capacity=3, refill=2), clock)

    for _ in range(3):
        assert bucket.ready_at() == 0.0
        bucket.take()

    assert bucket.ready_at() == 0.5
    clock.advance(0.5)
    assert bucket.ready_at() == 0.5  # now
    bucket.take()
    assert bucket.ready_at() == pytest.approx(1.0)


def test_refill_never_exceeds_capacity() -> None:
    clock = VirtualClock()
    bucket = TokenBucket(Bucket(capacity=5, refill=1), clock)
    bucket.take(5)

    clock.advance(1000)

    assert bucket.tokens == 5


def test_more_than_the_capacity_waits_for_a_full_bucket_and_goes_into_debt() -> None:
    clock = VirtualClock()
    bucket = TokenBucket(Bucket(capacity=10, refill=5), clock)
    bucket.take(4)

    assert bucket.ready_at(25) == pytest.approx(0.8)  # 4 spent, refilled at 5/s
    clock.advance(0.8)
    bucket.take(25)

    assert bucket.tokens == pytest.approx(-15)
    assert bucket.ready_at(1) == pytest.approx(0.8 + 16 / 5)


def test_a_throttle_empties_the_bucket_but_keeps_a_debt() -> None:
    clock = VirtualClock()
    full = TokenBucket(Bucket(capacity=50, refill=5), clock)
    indebted = TokenBucket(Bucket(capacity=50, refill=5), clock)
    indebted.take(60)

    full.throttled(sent_at=0.0)
    indebted.throttled(sent_at=0.0)

    assert full.tokens == 0
    assert indebted.tokens == -10


def test_a_bucket_needs_positive_figures() -> None:
    with pytest.raises(ValueError, match="positive capacity and refill"):
        TokenBucket(Bucket(capacity=0, refill=1), VirtualClock())


def test_buckets_are_per_account_region_and_name() -> None:
    limiter = RateLimiter(VirtualClock())

    a = limiter.bucket("prod", "us-east-1", "ec2.mutating")

    assert limiter.bucket("prod", "us-east-1", "ec2.mutating") is a
    assert limiter.bucket("prod", "eu-west-1", "ec2.mutating") is not a
    assert limiter.bucket("dev", "us-east-1", "ec2.mutating") is not a
    assert a.spec == DEFAULT_BUCKETS["ec2.mutating"]


def test_overrides_replace_defaults_and_unknown_names_are_refused() -> None:
    limiter = RateLimiter(VirtualClock(), {"ec2.mutating": Bucket(10, 1)})
    assert limiter.bucket("a", "r", "ec2.mutating").spec == Bucket(10, 1)
    assert limiter.spec("ec2.describe") == DEFAULT_BUCKETS["ec2.describe"]

    with pytest.raises(ValueError) as raised:
        RateLimiter(VirtualClock(), {"ec2.mutatin": Bucket(1, 1)})
    assert str(raised.value).startswith(
        "unknown rate-limit bucket(s) ec2.mutatin; known: dynamodb.describe, "
        "ec2.AttachVolume, ec2.CancelCapacityReservation, ec2.CreateCapacityReservation, "
        "ec2.CreateReplaceRootVolumeTask, ")


def test_each_ec2_api_has_its_own_bucket_sized_by_its_category() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(clock)
    attach, detach = operation("ec2", "AttachVolume"), operation("ec2", "DetachVolume")

    for _ in range(50):
        limiter.take("a", "r", attach)

    # AWS evaluates each API individually: the detaches still have their 50.
    assert limiter.ready_at("a", "r", attach) == pytest.approx(0.2)
    assert limiter.ready_at("a", "r", detach) == 0.0
    assert limiter.bucket("a", "r", "ec2.DetachVolume").spec == Bucket(50, 5)
    assert limiter.spec("ec2.CreateSnapshot") == Bucket(100, 5)
    assert limiter.spec("ec2.StartInstances") == Bucket(5, 2)
    # Services that publish no per-API buckets keep their category's, shared.
    assert operation("ssm", "GetCommandInvocation").pacing_bucket == "ssm.describe"


def test_a_category_override_sizes_each_of_its_apis_and_an_api_override_wins() -> None:
    limiter = RateLimiter(VirtualClock(), {"ec2.mutating": Bucket(20, 2),
                                           "ec2.AttachVolume": Bucket(10, 1)})

    assert limiter.spec("ec2.DetachVolume") == Bucket(20, 2)
    assert limiter.spec("ec2.ModifyInstanceAttribute") == Bucket(20, 2)
    assert limiter.spec("ec2.AttachVolume") == Bucket(10, 1)
    assert limiter.spec("ec2.CreateSnapshot") == DEFAULT_BUCKETS["ec2.create-snapshot"]


def test_start_instances_spends_a_request_token_and_one_token_per_instance() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(clock, {"ec2.start-instances-resource": Bucket(100, 2)})
    start = operation("ec2", "StartInstances")

    limiter.take("a", "r", start, resources=90)

    assert limiter.bucket("a", "r", "ec2.StartInstances").tokens == 4
    assert limiter.resource_tokens("a", "r", start) == 10
    # The request bucket has tokens; 20 instances need 10 more resource tokens: 5 s.
    assert limiter.ready_at("a", "r", start, resources=20) == pytest.approx(5.0)
    assert limiter.resource_tokens("a", "r", operation("ec2", "AttachVolume")) is None


def test_a_throttle_empties_and_slows_that_apis_bucket_in_that_account_and_region() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(clock)
    detach = operation("ec2", "DetachVolume")

    limiter.throttled("a", "r", detach, sent_at=0.0)

    assert limiter.ready_at("a", "r", detach) == pytest.approx(1 / (5 * 0.7))
    assert limiter.ready_at("a", "r", operation("ec2", "AttachVolume")) == 0.0
    assert limiter.ready_at("a", "other", detach) == 0.0
    assert limiter.ready_at("other", "r", detach) == 0.0
