"""The learned rate of one bucket (CUBIC on rates), on a VirtualClock."""

from __future__ import annotations

import pytest

from remediate.aws.adaptive import DECREASE, FLOOR, HOLD, AdaptiveRate, K
from remediate.aws.apis import Bucket
from remediate.aws.ratelimit import TokenBucket
from remediate.clock import VirtualClock


def test_a_throttle_cuts_the_rate_and_it_comes_back_to_the_limit_found_after_k() -> None:
    rate = AdaptiveRate(documented=5.0, now=0.0)

    assert rate.throttled(now=0.0, sent_at=0.0)
    assert rate.rate == pytest.approx(5.0 * DECREASE)

    # Quickly most of the way back, then flat around the limit it was throttled at.
    assert rate.advance(K / 2, busy=False) == pytest.approx(5.0 * (1 - 0.3 / 8))
    assert rate.advance(K, busy=True) == pytest.approx(5.0)
    assert rate.advance(K + HOLD, busy=True) == pytest.approx(5.0)
    assert rate.advance(2 * K + HOLD, busy=True) == pytest.approx(5.0 * 1.3)


def test_a_lowered_limit_is_learned_and_the_documented_rate_is_recovered_idle() -> None:
    rate = AdaptiveRate(documented=5.0, now=0.0)
    rate.throttled(now=10.0, sent_at=10.0)
    rate.advance(10.0 + K, busy=True)
    rate.throttled(now=10.0 + K, sent_at=10.0 + K)  # the same limit, found again
    rate.throttled(now=20.0 + K, sent_at=20.0 + K)  # lower still

    assert rate.limit < 5.0 * 0.95
    # Idle, it climbs back to the documented rate (a neighbour's burst passes), no further.
    assert rate.advance(10_000.0, busy=False) == 5.0


def test_requests_sent_before_a_cut_do_not_cut_again() -> None:
    rate = AdaptiveRate(documented=5.0, now=0.0)
    rate.throttled(now=1.0, sent_at=0.9)

    assert not rate.throttled(now=1.1, sent_at=0.95)  # on its way when the rate was cut
    assert rate.rate == pytest.approx(5.0 * DECREASE, rel=1e-2)
    assert rate.throttled(now=1.2, sent_at=1.15)  # sent at the lower rate: cut again
    assert rate.rate == pytest.approx(5.0 * DECREASE**2, rel=1e-2)


def test_the_rate_never_falls_below_its_floor() -> None:
    rate = AdaptiveRate(documented=5.0, now=0.0)
    for step in range(100):
        rate.throttled(now=step / 100, sent_at=step / 100)
    assert rate.rate == pytest.approx(5.0 * FLOOR)


def test_an_idle_bucket_does_not_probe_past_the_documented_rate() -> None:
    rate = AdaptiveRate(documented=5.0, now=0.0)
    assert rate.advance(10 * K, busy=False) == 5.0
    # Busy again after the pause: it holds the documented rate, then probes from it.
    assert rate.advance(10 * K + HOLD, busy=True) == 5.0
    assert rate.advance(11 * K + HOLD, busy=True) == pytest.approx(5.0 * 1.3)


def test_a_raised_limit_is_learned_by_a_bucket_kept_busy() -> None:
    clock = VirtualClock()
    bucket = TokenBucket(Bucket(capacity=5, refill=5), clock)
    sent = 0
    while clock.now() < 3 * K + HOLD:  # spend every token the moment it comes
        clock.sleep_until(bucket.ready_at())
        bucket.take()
        sent += 1

    # Documented 5/s, and nothing throttled it: it went ever faster.
    assert bucket.refill > 5 * 3
    assert sent > (3 * K + HOLD) * 5 * 1.5
