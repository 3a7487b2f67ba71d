"""How long the real run would take, from a dry run's plan. A rough, documented model.

Two bounds, and the estimate is the larger:

- **API pacing.** Per (account, Region, bucket): the requests the plan makes
  beyond the bucket's burst capacity, divided by its refill rate. Buckets are the
  pacer's (:attr:`~remediate.aws.apis.Operation.pacing_bucket`): one per EC2 API, as
  AWS evaluates each individually. Calls that
  batch are assumed to merge ``min(batch_limit, concurrency)`` targets a
  request; Start/StopInstances also spend their resource bucket per instance.
- **Waiting.** Each target's critical path is the sum of the time AWS takes to
  settle after each mutating call it makes (:data:`SETTLE_SECONDS`: domain.md's
  "a stop takes a few minutes", etc.; AWS publishes no exact figures). Targets
  run ``concurrency`` at a time per account and Region, so the path is paid once
  per wave of the busiest one.

It ignores batch pauses (the canary's confirmation), throttling by other tools,
retries and failures; treat it as an order of magnitude, not a promise. `plan`
replaces it with a rehearsal of the run (:mod:`remediate.forecast`) whenever it can;
this is what is left when it cannot (no sandbox installed, ``--no-rehearsal``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from remediate.actions.contract import Target
from remediate.aws.apis import UnknownOperation, operation
from remediate.aws.ratelimit import RateLimiter

SETTLE_SECONDS: Final = {
    "ec2:StopInstances": 120.0,
    "ec2:StartInstances": 120.0,
    "ec2:RebootInstances": 180.0,
    "ec2:CreateSnapshot": 300.0,
    "ec2:DetachVolume": 15.0,
    "ec2:AttachVolume": 15.0,
    "ec2:RunInstances": 300.0,
    "ec2:CreateReplaceRootVolumeTask": 300.0,
    "ssm:SendCommand": 60.0,
    "workspaces:StartWorkspaces": 300.0,
    "workspaces:StopWorkspaces": 300.0,
    "workspaces:RebootWorkspaces": 300.0,
    "workspaces:RestoreWorkspace": 1800.0,
    "workspaces:RebuildWorkspaces": 3600.0,
}


@dataclass(frozen=True)
class Estimate:
    seconds: float
    # "account/region/bucket" -> seconds that bucket alone needs.
    bucket_seconds: dict[str, float] = field(default_factory=dict)
    path_seconds: float = 0.0
    waves: int = 0
    # A rehearsal's figures (remediate.forecast) instead: "service:Operation" -> its
    # mutating requests.
    calls: dict[str, int] = field(default_factory=dict)
    rehearsed: bool = False


def estimate(plans: Iterable[tuple[Target, Sequence[str]]], limiter: RateLimiter,
             concurrency: int) -> Estimate:
    """``plans``: each target with the APIs ("ec2:StopInstances") its steps would call."""
    per_api: Counter[tuple[str, str, str]] = Counter()
    per_scope: Counter[tuple[str, str]] = Counter()
    path = 0.0
    for target, apis in plans:
        per_scope[(target.account, target.region)] += 1
        path = max(path, sum(SETTLE_SECONDS.get(api, 0.0) for api in apis))
        for api in apis:
            per_api[(target.account, target.region, api)] += 1
    requests: Counter[tuple[str, str, str]] = Counter()
    for (account, region, api), count in per_api.items():
        service, _, name = api.partition(":")
        try:
            op = operation(service, name)
        except UnknownOperation:
            continue
        per_request = max(1, min(op.batch_limit, concurrency)) if op.batch_key else 1
        requests[(account, region, op.pacing_bucket)] += math.ceil(count / per_request)
        if op.resource_bucket:
            requests[(account, region, op.resource_bucket)] += count
    bucket_seconds = {}
    for (account, region, bucket), count in requests.items():
        spec = limiter.spec(bucket)
        over = max(0.0, count - spec.capacity)
        bucket_seconds[f"{account}/{region}/{bucket}"] = over / spec.refill
    waves = math.ceil(max(per_scope.values(), default=0) / max(1, concurrency))
    seconds = max([waves * path, *bucket_seconds.values()])
    return Estimate(seconds, bucket_seconds, path, waves)
