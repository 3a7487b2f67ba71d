"""Client-side token buckets, one per (account, Region, bucket name), on the run's clock.

AWS throttles EC2 per account and Region with token buckets, one per API
(:mod:`remediate.aws.apis`); pacing our calls to the same buckets gets close to the
best rate AWS allows without drawing ``RequestLimitExceeded``. The scheduler asks a
bucket *when* a token is available and schedules the call then, instead of a worker
sleeping on it.

A bucket's refill rate is learned (:mod:`remediate.aws.adaptive`): when AWS throttles
us anyway (a neighbour spends the same bucket, or AWS changed the account's limit),
the executor tells the limiter (:meth:`RateLimiter.throttled`), which empties that
bucket and lowers its rate for every later call of the run, per account and Region.

After a throttle, the buckets of that API's whole category (in that account and
Region) send their bursts spread out, at most :data:`SPREAD` times their refill
rate: AWS's bucket may hold fewer tokens than ours (a neighbour, or a bucket AWS
shares between the category's APIs), and a burst sent at once would be throttled
whole, where a spread one learns from its first throttle. Until then, a full bucket
bursts at once, as AWS's page allows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from remediate.aws.adaptive import AdaptiveRate
from remediate.aws.apis import OPERATIONS, RATE_LIMIT_NAMES, Bucket, Operation, default_bucket
from remediate.clock import Clock

# Float rounding must not leave a bucket a hair short of a token it was waited for.
_EPSILON = 1e-9

SPREAD: Final = 10.0
"""A cautious bucket's burst goes out at most this many times its refill rate."""


class TokenBucket:
    def __init__(self, spec: Bucket, clock: Clock) -> None:
        if spec.capacity <= 0 or spec.refill <= 0:
            raise ValueError(f"a bucket needs a positive capacity and refill, got {spec}")
        self.spec = spec
        self.clock = clock
        self._tokens = float(spec.capacity)
        self._at = clock.now()
        self._taken_at = float("-inf")
        self.rate = AdaptiveRate(spec.refill, self._at)

    def _refill(self) -> float:
        now = self.clock.now()
        if now > self._at:
            refilled = self._tokens + (now - self._at) * self.rate.rate
            self._tokens = min(self.spec.capacity, refilled)
            self._at = now
        return now

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    @property
    def refill(self) -> float:
        """Tokens a second now: the documented refill until AWS taught otherwise."""
        return self.rate.rate

    def ready_at(self, n: float = 1.0, spread: float | None = None) -> float:
        """When ``n`` tokens will be there (now, if they are). More than the capacity
        counts as a full bucket, so a large batch waits for a full bucket, not forever.
        ``spread``: no sooner than 1 / (spread x rate) after the last take."""
        now = self._refill()
        need = min(float(n), self.spec.capacity)
        when = now
        if self._tokens < need - _EPSILON:
            when = now + (need - self._tokens) / self.rate.rate
        if spread is not None:
            when = max(when, self._taken_at + 1.0 / (spread * self.rate.rate))
        return when

    def take(self, n: float = 1.0) -> None:
        """Spend ``n`` tokens (the balance may go below zero after an oversized batch)."""
        now = self._refill()
        self.rate.advance(now, busy=self._tokens < n + _EPSILON)
        self._tokens -= n
        self._taken_at = now

    def throttled(self, sent_at: float) -> None:
        """AWS throttled a request sent at ``sent_at``: its bucket is empty, so is ours,
        and its rate is lower than ours."""
        now = self._refill()
        self._tokens = min(self._tokens, 0.0)
        self.rate.throttled(now, sent_at)


@dataclass
class RateLimiter:
    """All buckets of a run. ``overrides`` (playbook ``execution.rate_limits``, then the
    command line) replace the defaults of :data:`remediate.aws.apis.DEFAULT_BUCKETS`: a
    category's for every API of it, an API's (``ec2.AttachVolume``) for that one."""

    clock: Clock
    overrides: Mapping[str, Bucket] = field(default_factory=dict)
    _buckets: dict[tuple[str, str, str], TokenBucket] = field(default_factory=dict)
    # (account, Region, category) with a throttled API: their bursts are spread.
    _cautious: set[tuple[str, str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.overrides) - set(RATE_LIMIT_NAMES))
        if unknown:
            raise ValueError(f"unknown rate-limit bucket(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(RATE_LIMIT_NAMES))}")

    def spec(self, name: str) -> Bucket:
        """The bucket ``name`` (a pacing bucket: a category, or one API's) starts as."""
        found = self.overrides.get(name)
        if found is None and name in OPERATIONS:
            found = self.overrides.get(OPERATIONS[name].bucket)
        return found or default_bucket(name)

    def bucket(self, account: str, region: str, name: str) -> TokenBucket:
        key = (account, region, name)
        found = self._buckets.get(key)
        if found is None:
            found = self._buckets[key] = TokenBucket(self.spec(name), self.clock)
        return found

    def ready_at(self, account: str, region: str, op: Operation, resources: int = 0) -> float:
        """When one ``op`` request touching ``resources`` instances may be sent."""
        spread = SPREAD if (account, region, op.bucket) in self._cautious else None
        when = self.bucket(account, region, op.pacing_bucket).ready_at(1, spread)
        if op.resource_bucket and resources:
            when = max(when, self.bucket(account, region, op.resource_bucket).ready_at(resources))
        return when

    def resource_tokens(self, account: str, region: str, op: Operation) -> float | None:
        """Tokens in ``op``'s resource bucket now (None when it has none)."""
        if not op.resource_bucket:
            return None
        return self.bucket(account, region, op.resource_bucket).tokens

    def take(self, account: str, region: str, op: Operation, resources: int = 0) -> None:
        self.bucket(account, region, op.pacing_bucket).take(1)
        if op.resource_bucket and resources:
            self.bucket(account, region, op.resource_bucket).take(resources)

    def throttled(self, account: str, region: str, op: Operation, sent_at: float) -> None:
        """AWS throttled an ``op`` request sent at ``sent_at``: that API's bucket, in that
        account and Region, slows down for the rest of the run, and its category's
        buckets there spread their bursts."""
        self.bucket(account, region, op.pacing_bucket).throttled(sent_at)
        self._cautious.add((account, region, op.bucket))
