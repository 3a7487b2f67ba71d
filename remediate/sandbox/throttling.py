"""API throttling like AWS's: random injected errors, token buckets, and a neighbour.

EC2's buckets come from remediate's catalogue (:mod:`remediate.aws.apis`, which cites
AWS's page), under one of two models (:data:`MODELS`):

- ``documented`` (the default): what AWS's page says. Each API has a bucket of its
  own, sized by its category or its own line; a request spends only its API's.
- ``shared-category``: the older reading, one bucket per category shared by all its
  APIs (AttachVolume, DetachVolume and ModifyInstanceAttribute draw on one 50/5
  bucket): about twice as tight for the volume swap. A tool that paces to the
  documented buckets must adapt to it.

Resource buckets (instances started, stopped, launched, terminated) come on top in
both. A :class:`Neighbour` stands for the other tools in the account (Auto Scaling,
CI, a console): it spends a share of the chosen buckets' refill. SSM and WorkSpaces
publish no bucket table; give them buckets through :attr:`ThrottlePolicy.buckets`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from remediate.aws import apis

FLOAT_NOISE = 1e-9
"""Tokens a bucket may lack and still admit a request (rounding, not throttling)."""

MODELS: Final = ("documented", "shared-category")
"""How EC2's request buckets are shared (the module docstring)."""


@dataclass(frozen=True)
class Bucket:
    """A token bucket: ``capacity`` tokens, refilled at ``refill_per_second``."""

    capacity: float
    refill_per_second: float


@dataclass(frozen=True)
class Neighbour:
    """Another tool in the account, spending ``share`` of each chosen bucket's refill.

    ``apis``: the ``"ec2:Operation"`` whose buckets it spends (under the model in
    force: in ``shared-category``, the whole category's); empty: every EC2 bucket.
    """

    share: float
    apis: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not 0.0 <= self.share < 1.0:
            raise ValueError(f"a neighbour's share is in [0, 1), got {self.share}")


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


def ec2_category(operation: str, params: Mapping[str, object]) -> str:
    """The category (a name of :data:`remediate.aws.apis.DEFAULT_BUCKETS`) an EC2
    request's bucket is sized by: the catalogue's, or by its name for an API remediate
    does not call; an unfiltered, unpaginated describe has its own."""
    known = apis.OPERATIONS.get(f"ec2.{operation}")
    if known is not None:
        category = known.bucket
    elif operation.startswith(("Describe", "Get")):
        category = "ec2.describe"
    else:
        category = "ec2.mutating"
    if (category == "ec2.describe" and operation in _UNFILTERED_DESCRIBES
            and not any(key.startswith(_NARROWING_PARAMS) for key in params)):
        return "ec2.describe-unfiltered"
    return category


def ec2_request_bucket(operation: str, params: Mapping[str, object],
                       model: str = "documented") -> tuple[str, Bucket]:
    """The bucket an EC2 request spends under ``model``: (its name, its size)."""
    category = ec2_category(operation, params)
    spec = apis.DEFAULT_BUCKETS[category]
    if model == "shared-category":
        name = category
    elif category == "ec2.describe-unfiltered":
        name = f"{operation} (unfiltered)"
    else:
        name = operation
    return f"ec2:{name}", Bucket(spec.capacity, spec.refill)


def ec2_resource_bucket(operation: str) -> tuple[str, Bucket] | None:
    """The resource bucket an EC2 request also spends (one token an instance), if any."""
    known = apis.OPERATIONS.get(f"ec2.{operation}")
    if known is None or known.resource_bucket is None:
        return None
    spec = apis.DEFAULT_BUCKETS[known.resource_bucket]
    return f"ec2:resource:{operation}", Bucket(spec.capacity, spec.refill)


def _instances(operation: str, params: Mapping[str, object]) -> float:
    """Instances a request starts, stops, launches or terminates."""
    if operation == "RunInstances":
        value = params.get("MaxCount", "1")
        first = value[0] if isinstance(value, list) and value else value
        try:
            return float(str(first))
        except ValueError:
            return 1.0
    return float(sum(1 for key in params if key.startswith("InstanceId.")))


@dataclass(frozen=True)
class ThrottlePolicy:
    """How the sandbox throttles requests.

    ``error_rate``: fraction of requests (to ``services``) failed at random with
    the service's throttling error, reproducible through ``seed``.
    ``ec2_defaults``: enforce AWS's EC2 token buckets on the sandbox clock, under
    ``model`` (:data:`MODELS`).
    ``buckets``: per-API buckets keyed ``"service:Operation"`` (or ``"service:*"``);
    for EC2 they replace the default bucket of that operation.
    ``neighbour``: another tool spending a share of the EC2 buckets.
    ``spare``: operations (``"service:Operation"``) the random errors never hit (their
    buckets still apply).
    """

    error_rate: float = 0.0
    seed: int = 0
    ec2_defaults: bool = False
    buckets: Mapping[str, Bucket] = field(default_factory=dict)
    services: frozenset[str] = frozenset({"ec2", "ssm", "workspaces"})
    spare: frozenset[str] = frozenset()
    model: str = "documented"
    neighbour: Neighbour | None = None

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"throttle model {self.model!r}: expected one of "
                             f"{', '.join(MODELS)}")

    @classmethod
    def random_errors(cls, rate: float, seed: int = 0) -> ThrottlePolicy:
        return cls(error_rate=rate, seed=seed)

    @classmethod
    def aws_defaults(cls, buckets: Mapping[str, Bucket] | None = None, *,
                     model: str = "documented",
                     neighbour: Neighbour | None = None) -> ThrottlePolicy:
        return cls(ec2_defaults=True, buckets=dict(buckets or {}), model=model,
                   neighbour=neighbour)


class _Level:
    __slots__ = ("last", "tokens")

    def __init__(self, tokens: float, last: float) -> None:
        self.tokens = tokens
        self.last = last


Charge = tuple[str, Bucket, float]


class Throttle:
    """Applies a :class:`ThrottlePolicy`; buckets are per account and Region, as in AWS."""

    def __init__(self, policy: ThrottlePolicy) -> None:
        self.policy = policy
        self._rng = random.Random(policy.seed)
        self._levels: dict[tuple[str, str, str], _Level] = {}
        neighbour = policy.neighbour
        self._neighboured = (None if neighbour is None or not neighbour.apis else frozenset(
            name for api in neighbour.apis
            for name in self._ec2_names(api.partition(":")[2])))

    def admit(
        self, service: str, operation: str, region: str, params: Mapping[str, object],
        now: float, account: str = "",
    ) -> bool:
        """True if the request may proceed; False if it is throttled (tokens untouched)."""
        if service not in self.policy.services:
            return True
        if (self.policy.error_rate and f"{service}:{operation}" not in self.policy.spare
                and self._rng.random() < self.policy.error_rate):
            return False
        charges = self._charges(service, operation, params)
        levels = [(self._level((account, region, name), bucket, now), cost)
                  for name, bucket, cost in charges]
        # A bucket short of a token by float noise alone (1 - 6e-14 after a refill that
        # was meant to make exactly 1) is not empty: AWS's accounting is not that exact.
        if any(level.tokens < cost - FLOAT_NOISE for level, cost in levels):
            return False
        for level, cost in levels:
            level.tokens = max(0.0, level.tokens - cost)
        return True

    def _ec2_names(self, operation: str) -> list[str]:
        """The buckets an EC2 API spends (both describe buckets for a describe)."""
        names = [ec2_request_bucket(operation, {}, self.policy.model)[0],
                 ec2_request_bucket(operation, {"Filter.1.Name": "x"}, self.policy.model)[0]]
        resource = ec2_resource_bucket(operation)
        return names + ([resource[0]] if resource else [])

    def _charges(self, service: str, operation: str, params: Mapping[str, object]
                 ) -> list[Charge]:
        buckets = self.policy.buckets
        explicit = buckets.get(f"{service}:{operation}") or buckets.get(f"{service}:*")
        charges: list[Charge] = []
        ec2 = service == "ec2" and self.policy.ec2_defaults
        if explicit is not None:
            charges.append((f"{service}:{operation}", explicit, 1.0))
        elif ec2:
            charges.append((*ec2_request_bucket(operation, params, self.policy.model), 1.0))
        resource = ec2_resource_bucket(operation) if ec2 else None
        if resource is not None:
            charges.append((*resource, _instances(operation, params)))
        return [(name, self._after_neighbour(name, bucket), cost)
                for name, bucket, cost in charges]

    def _after_neighbour(self, name: str, bucket: Bucket) -> Bucket:
        """What is left of ``bucket`` for us once the neighbour took its share."""
        neighbour = self.policy.neighbour
        if (neighbour is None or not name.startswith("ec2:")
                or (self._neighboured is not None and name not in self._neighboured)):
            return bucket
        return Bucket(bucket.capacity, bucket.refill_per_second * (1.0 - neighbour.share))

    def _level(self, key: tuple[str, str, str], bucket: Bucket, now: float) -> _Level:
        """The bucket's level for (account, Region, bucket name), refilled to ``now``."""
        level = self._levels.get(key)
        if level is None:
            level = self._levels[key] = _Level(bucket.capacity, now)
        elapsed = max(0.0, now - level.last)
        level.tokens = min(bucket.capacity, level.tokens + elapsed * bucket.refill_per_second)
        level.last = now
        return level
