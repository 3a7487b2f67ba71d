"""How long to wait before retrying: API calls (by error class) and whole steps.

The delays come from tenacity's wait strategies, but nothing here sleeps: the
executor's scheduler puts the retry on its timeline, so a target waiting to retry
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

from dataclasses import dataclass
from typing import Final

import tenacity

from remediate.aws.errors import ErrorClass, classify

# tenacity's strategies read the attempt number from a call state, which wants an owner.
_NO_RETRYING: Final = tenacity.Retrying()


def backoff(initial: float, multiplier: float, max_delay: float,
            jitter: bool) -> tenacity.wait.wait_base:
    """Exponential backoff ``initial * multiplier**(n-1)`` capped at ``max_delay``.

    With ``jitter`` the delay is drawn uniformly from [0, that] ("full jitter",
    AWS's recommendation for many clients contending for one bucket).
    """
    if jitter:
        return tenacity.wait_random_exponential(multiplier=initial, max=max_delay,
                                                exp_base=multiplier)
    return tenacity.wait_exponential(multiplier=initial, max=max_delay, exp_base=multiplier)


def delay_for(strategy: tenacity.wait.wait_base, attempt: int) -> float:
    """The delay a tenacity strategy gives after ``attempt`` failed attempts (1-based)."""
    state = tenacity.RetryCallState(_NO_RETRYING, None, (), {})
    state.attempt_number = attempt
    return float(strategy(state))


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of one API call, by error class (:mod:`remediate.aws.errors`).

    Throttling and transient errors are retried up to ``max_attempts`` calls in
    all; eventual-consistency errors (an id AWS has not propagated yet) only up to
    ``eventual_attempts``, since a truly missing id should fail the step soon;
    fatal errors never.
    """

    max_attempts: int = 10
    eventual_attempts: int = 4
    initial: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 30.0

    def delay(self, code: str, attempts: int) -> float | None:
        """Seconds to wait before the next attempt, or None to give up.

        ``attempts`` is how many calls were made so far (1 after the first failure).
        """
        kind = classify(code)
        if kind is ErrorClass.FATAL:
            return None
        limit = self.eventual_attempts if kind is ErrorClass.EVENTUAL else self.max_attempts
        if attempts >= limit:
            return None
        strategy = backoff(self.initial, self.multiplier, self.max_delay, jitter=True)
        return delay_for(strategy, attempts)
