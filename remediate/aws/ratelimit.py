"""Client-side token buckets, one per (account, Region, bucket name), on the run's clock.

AWS throttles EC2 per account and Region with token buckets (domain.md); pacing
our calls to the same buckets gets close to the best rate AWS allows without
drawing ``RequestLimitExceeded``. The scheduler asks a bucket *when* a token is
available and schedules the call then, instead of a worker sleeping on it.

When AWS throttles us anyway (another tool shares the account's bucket), the
executor drains our bucket (:meth:`TokenBucket.drain`) so the following calls
go at the refill rate instead of bursting into the same wall.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from remediate.aws.apis import DEFAULT_BUCKETS, Bucket, Operation
from remediate.clock import Clock

# Float rounding must not leave a bucket a hair short of a token it was waited for.
_EPSILON = 1e-9


class TokenBucket:
    def __init__(self, spec: Bucket, clock: Clock) -> None:
        if spec.capacity <= 0 or spec.refill <= 0:
            raise ValueError(f"a bucket needs a positive capacity and refill, got {spec}")
        self.spec = spec
        self.clock = clock
        self._tokens = float(spec.capacity)
        self._at = clock.now()

    def _refill(self) -> float:
        now = self.clock.now()
        if now > self._at:
            refilled = self._tokens + (now - self._at) * self.spec.refill
            self._tokens = min(self.spec.capacity, refilled)
            self._at = now
        return now

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def ready_at(self, n: float = 1.0) -> float:
        """When ``n`` tokens will be there (now, if they are). More than the capacity
        counts as a full bucket, so a large batch waits for a full bucket, not forever."""
        now = self._refill()
        need = min(float(n), self.spec.capacity)
        if self._tokens >= need - _EPSILON:
            return now
        return now + (need - self._tokens) / self.spec.refill

    def take(self, n: float = 1.0) -> None:
        """Spend ``n`` tokens (the balance may go below zero after an oversized batch)."""
        self._refill()
        self._tokens -= n

    def drain(self) -> None:
        """AWS throttled us: assume its bucket is empty and ours should be too."""
        self._refill()
        self._tokens = min(self._tokens, 0.0)


@dataclass
class RateLimiter:
    """All buckets of a run. ``overrides`` (playbook ``execution.rate_limits``, then the
    command line) replace the defaults of :data:`remediate.aws.apis.DEFAULT_BUCKETS`."""

    clock: Clock
    overrides: Mapping[str, Bucket] = field(default_factory=dict)
    _buckets: dict[tuple[str, str, str], TokenBucket] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.overrides) - set(DEFAULT_BUCKETS))
        if unknown:
            raise ValueError(f"unknown rate-limit bucket(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(DEFAULT_BUCKETS))}")

    def spec(self, name: str) -> Bucket:
        return self.overrides.get(name) or DEFAULT_BUCKETS[name]

    def bucket(self, account: str, region: str, name: str) -> TokenBucket:
        key = (account, region, name)
        found = self._buckets.get(key)
        if found is None:
            found = self._buckets[key] = TokenBucket(self.spec(name), self.clock)
        return found

    def ready_at(self, account: str, region: str, op: Operation, resources: int = 0) -> float:
        """When one ``op`` request touching ``resources`` instances may be sent."""
        when = self.bucket(account, region, op.bucket).ready_at(1)
        if op.resource_bucket and resources:
            when = max(when, self.bucket(account, region, op.resource_bucket).ready_at(resources))
        return when

    def resource_tokens(self, account: str, region: str, op: Operation) -> float | None:
        """Tokens in ``op``'s resource bucket now (None when it has none)."""
        if not op.resource_bucket:
            return None
        return self.bucket(account, region, op.resource_bucket).tokens

    def take(self, account: str, region: str, op: Operation, resources: int = 0) -> None:
        self.bucket(account, region, op.bucket).take(1)
        if op.resource_bucket and resources:
            self.bucket(account, region, op.resource_bucket).take(resources)

    def throttled(self, account: str, region: str, op: Operation) -> None:
        self.bucket(account, region, op.bucket).drain()
