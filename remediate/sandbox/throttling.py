"""API throttling like AWS's: random injected errors and per-API token buckets.

EC2 bucket sizes and refill rates are AWS's documented defaults (domain.md,
"Request throttling for the Amazon EC2 API"). SSM and WorkSpaces publish no
bucket table; give them buckets through :attr:`ThrottlePolicy.buckets`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

FLOAT_NOISE = 1e-9
"""Tokens a bucket may lack and still admit a request (rounding, not throttling)."""


@dataclass(frozen=True)
class Bucket:
    """A token bucket: ``capacity`` tokens, refilled at ``refill_per_second``."""

    capacity: float
    refill_per_second: float


EC2_REQUEST_BUCKETS: Mapping[str, Bucket] = {
    "non-mutating": Bucket(100, 20),
    "unfiltered-describe": Bucket(50, 10),
    "mutating": Bucket(50, 5),
    "create-storage": Bucket(100, 5),
    "create-tags": Bucket(100, 10),
    "run-start": Bucket(5, 2),
}
"""AWS's default EC2 request-rate buckets per account and Region."""

EC2_RESOURCE_BUCKETS: Mapping[str, Bucket] = {
    "StartInstances": Bucket(1000, 2),
    "StopInstances": Bucket(1000, 20),
}
"""AWS's default resource-rate buckets: one token per instance started/stopped."""

_UNFILTERED_DESCRIBES = frozenset(
    {"DescribeInstances", "DescribeVolumes", "DescribeSnapshots", "DescribeInstanceStatus"}
)
_NARROWING_PARAMS: tuple[str, ...] = (
    "Filter",
    "InstanceId",
    "VolumeId",
    "SnapshotId",
    "MaxResults",
    "Owner",
)


def ec2_bucket_class(operation: str, params: Mapping[str, object]) -> str:
    """Which of AWS's EC2 request buckets an operation draws from."""
    if operation in ("RunInstances", "StartInstances"):
        return "run-start"
    if operation in ("CreateSnapshot", "CreateVolume"):
        return "create-storage"
    if operation == "CreateTags":
        return "create-tags"
    if operation.startswith(("Describe", "Get")):
        if operation in _UNFILTERED_DESCRIBES and not any(
            key.startswith(_NARROWING_PARAMS) for key in params
        ):
            return "unfiltered-describe"
        return "non-mutating"
    return "mutating"


@dataclass(frozen=True)
class ThrottlePolicy:
    """How the sandbox throttles requests.

    ``error_rate``: fraction of requests (to ``services``) failed at random with
    the service's throttling error, reproducible through ``seed``.
    ``ec2_defaults``: enforce AWS's default EC2 token buckets on the sandbox clock.
    ``buckets``: per-API buckets keyed ``"service:Operation"`` (or ``"service:*"``);
    for EC2 they replace the default bucket of that operation.
    """

    error_rate: float = 0.0
    seed: int = 0
    ec2_defaults: bool = False
    buckets: Mapping[str, Bucket] = field(default_factory=dict)
    services: frozenset[str] = frozenset({"ec2", "ssm", "workspaces"})

    @classmethod
    def random_errors(cls, rate: float, seed: int = 0) -> ThrottlePolicy:
        return cls(error_rate=rate, seed=seed)

    @classmethod
    def aws_defaults(cls, buckets: Mapping[str, Bucket] | None = None) -> ThrottlePolicy:
        return cls(ec2_defaults=True, buckets=dict(buckets or {}))


class _Level:
    __slots__ = ("last", "tokens")

    def __init__(self, tokens: float, last: float) -> None:
        self.tokens = tokens
        self.last = last


class Throttle:
    """Applies a :class:`ThrottlePolicy`; buckets are per Region, as in AWS."""

    def __init__(self, policy: ThrottlePolicy) -> None:
        self.policy = policy
        self._rng = random.Random(policy.seed)
        self._levels: dict[tuple[str, str], _Level] = {}

    def admit(
        self, service: str, operation: str, region: str, params: Mapping[str, object], now: float
    ) -> bool:
        """True if the request may proceed; False if it is throttled (tokens untouched)."""
        if service not in self.policy.services:
            return True
        if self.policy.error_rate and self._rng.random() < self.policy.error_rate:
            return False
        charges = self._charges(service, operation, params)
        levels = [(self._level(region, name, bucket, now), cost) for name, bucket, cost in charges]
        # A bucket short of a token by float noise alone (1 - 6e-14 after a refill that
        # was meant to make exactly 1) is not empty: AWS's accounting is not that exact.
        if any(level.tokens < cost - FLOAT_NOISE for level, cost in levels):
            return False
        for level, cost in levels:
            level.tokens = max(0.0, level.tokens - cost)
        return True

    def _charges(
        self, service: str, operation: str, params: Mapping[str, object]
    ) -> list[tuple[str, Bucket, float]]:
        buckets = self.policy.buckets
        explicit = buckets.get(f"{service}:{operation}") or buckets.get(f"{service}:*")
        charges: list[tuple[str, Bucket, float]] = []
        if explicit is not None:
            charges.append((f"{service}:{operation}", explicit, 1.0))
        elif service == "ec2" and self.policy.ec2_defaults:
            name = ec2_bucket_class(operation, params)
            charges.append((f"ec2:{name}", EC2_REQUEST_BUCKETS[name], 1.0))
        if service == "ec2" and self.policy.ec2_defaults and operation in EC2_RESOURCE_BUCKETS:
            count = sum(1 for key in params if key.startswith("InstanceId."))
            charges.append(
                (f"ec2:resource:{operation}", EC2_RESOURCE_BUCKETS[operation], float(count))
            )
        return charges

    def _level(self, region: str, name: str, bucket: Bucket, now: float) -> _Level:
        level = self._levels.get((region, name))
        if level is None:
            level = self._levels[(region, name)] = _Level(bucket.capacity, now)
        elapsed = max(0.0, now - level.last)
        level.tokens = min(bucket.capacity, level.tokens + elapsed * bucket.refill_per_second)
        level.last = now
        return level
