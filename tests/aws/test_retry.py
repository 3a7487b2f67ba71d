"""API retry delays by error class, and exponential backoff without sleeping."""

from __future__ import annotations

import pytest

from remediate.aws.errors import EVENTUAL_CODES, THROTTLING_CODES, TRANSIENT_CODES
from remediate.aws.retry import Backoff, RetryPolicy


def test_backoff_without_jitter_grows_by_the_multiplier_up_to_the_cap() -> None:
    wait = Backoff(initial=5.0, multiplier=3.0, max_delay=100.0, jitter=False)

    assert [wait.delay(n) for n in range(1, 6)] == [5.0, 15.0, 45.0, 100.0, 100.0]


def test_full_jitter_draws_from_zero_to_the_exponential_bound() -> None:
    wait = Backoff(initial=1.0, multiplier=2.0, max_delay=30.0, jitter=True)

    for attempt, bound in ((1, 1.0), (3, 4.0), (5, 16.0), (9, 30.0)):
        delays = [wait.delay(attempt) for _ in range(200)]
        assert all(0.0 <= d <= bound for d in delays)
        # Spread over the window, not stuck at one end.
        assert min(delays) < bound * 0.25 and max(delays) > bound * 0.75


@pytest.mark.parametrize("code", sorted(THROTTLING_CODES | TRANSIENT_CODES))
def test_throttled_and_transient_errors_retry_up_to_max_attempts(code: str) -> None:
    policy = RetryPolicy(max_attempts=4, initial=0.5, max_delay=30.0)

    delays = [policy.delay(code, attempts) for attempts in range(1, 5)]

    assert all(d is not None for d in delays[:3])
    assert delays[3] is None
    assert 0.0 <= (delays[2] or 0.0) <= 2.0


@pytest.mark.parametrize("code", sorted(EVENTUAL_CODES))
def test_eventual_consistency_errors_retry_only_a_few_times(code: str) -> None:
    policy = RetryPolicy(max_attempts=10, eventual_attempts=3)

    assert policy.delay(code, 2) is not None
    assert policy.delay(code, 3) is None


@pytest.mark.parametrize("code", ["IncorrectInstanceState", "AccessDenied", "Unknown"])
def test_fatal_errors_are_never_retried(code: str) -> None:
    assert RetryPolicy().delay(code, 1) is None


def test_no_capacity_has_a_budget_of_minutes_of_its_own() -> None:
    policy = RetryPolicy(max_attempts=10, capacity_attempts=4,
                         capacity_delays=(30.0, 60.0, 120.0))

    delays = [policy.delay("InsufficientInstanceCapacity", n) for n in range(1, 5)]

    assert delays == [30.0, 60.0, 120.0, None]
    assert RetryPolicy(capacity_attempts=6, capacity_delays=(10.0,)).delay(
        "InsufficientInstanceCapacity", 5) == 10.0  # the last delay repeats


def test_a_very_late_attempt_waits_the_cap_not_an_overflow() -> None:
    assert Backoff(initial=1.0, multiplier=10.0, max_delay=30.0, jitter=False).delay(400) == 30.0
