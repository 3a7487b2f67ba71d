"""How long to wait before retrying: API calls (by error class) and whole steps.

The delays are exponential backoff with full jitter (:class:`Backoff`), but nothing
here sleeps: the executor's scheduler puts the retry on its timeline, so a target waiting to retry
holds no thread and a VirtualClock run never sleeps for real.

Retries happen in one layer only. botocore's own retries must be switched off in
every client remediate builds, or each throttled call would be retried by botocore
*and* here (multiplying attempts, sleeping in a worker thread for real, and hiding
throttling from the pacing that should react to it). That is
``Config(retries={"mode": "standard", "total_max_attempts": 1})``
(:data:`remediate.aws.clients.BOTOCORE_RETRIES`); note that ``max_attempts: 1``
would not do: botocore reads it as one *retry*, two attempts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from remediate.aws.errors import ErrorClass, classify


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff ``initial * multiplier**(n-1)`` capped at ``max_delay``.

    With ``jitter`` the delay is drawn uniformly from [0, that] ("full jitter", AWS's
    recommendation for many clients contending for one bucket: Amazon Builders' Library,
    "Timeouts, retries, and backoff with jitter"). Written here rather than taken from
    tenacity: its wait strategies read the attempt from a call state of its own retry
    loop, and remediate's retries are not a loop but entries on the scheduler's timeline.
    """

    initial: float
    multiplier: float
    max_delay: float
    jitter: bool

    def delay(self, attempt: int) -> float:
        """Seconds to wait after ``attempt`` failed attempts (1-based)."""
        try:
            bound = self.initial * self.multiplier ** (attempt - 1)
        except OverflowError:
            bound = self.max_delay
        bound = max(0.0, min(bound, self.max_delay))
        return random.uniform(0.0, bound) if self.jitter else bound


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of one API call, by error class (:mod:`remediate.aws.errors`).

    Throttling and transient errors are retried up to ``max_attempts`` calls in
    all; eventual-consistency errors (an id AWS has not propagated yet) only up to
    ``eventual_attempts``, since a truly missing id should fail the step soon;
    fatal errors never. No capacity (InsufficientInstanceCapacity) has a budget of its
    own, minutes rather than seconds: ``capacity_attempts`` calls,
    ``capacity_delays`` apart (the last delay repeats), without jitter (it is not a
    token bucket many clients contend for).
    """

    max_attempts: int = 10
    eventual_attempts: int = 4
    initial: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 30.0
    capacity_attempts: int = 4
    capacity_delays: tuple[float, ...] = (30.0, 60.0, 120.0)

    def delay(self, code: str, attempts: int) -> float | None:
        """Seconds to wait before the next attempt, or None to give up.

        ``attempts`` is how many calls were made so far (1 after the first failure).
        """
        kind = classify(code)
        if kind is ErrorClass.FATAL:
            return None
        if kind is ErrorClass.CAPACITY:
            if attempts >= self.capacity_attempts:
                return None
            return self.capacity_delays[min(attempts, len(self.capacity_delays)) - 1]
        limit = self.eventual_attempts if kind is ErrorClass.EVENTUAL else self.max_attempts
        if attempts >= limit:
            return None
        return Backoff(self.initial, self.multiplier, self.max_delay, jitter=True).delay(attempts)
