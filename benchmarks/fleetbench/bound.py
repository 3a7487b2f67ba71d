"""The lower bound on a fleet run's makespan: AWS's buckets and one target's critical path.

A playbook's work on one target is a *path*: the AWS calls it must make, in order,
and how long AWS takes (the sandbox's :class:`~remediate.sandbox.Durations`) before
the next one may go. Polling delays, token waits, rescue-instance launches and the
tool's own time are left out: the bound is what no tool could beat against these
buckets, not what this one should reach.

For N targets in a Region (Regions have separate buckets; the busiest one counts):

- ``critical path`` CP = the sum of the path's durations: no target can finish sooner.
- for each token bucket b (capacity C, refill r) and each hop j of the path that
  spends b: every call at hop j or later spends T_j tokens in all (N per call, or
  ceil(N / batch limit) for calls that take many ids), none of them can go before
  p_j (the path's time up to hop j), and the bucket holds at most C at p_j. So the
  last one goes no sooner than p_j + (T_j - C) / r, and whoever makes it still has
  the path after b's last hop ahead, s_b. Bound_b = max_j [p_j + max(0, T_j - C) / r]
  + s_b.
- the bound is max(CP, max_b Bound_b).

Buckets and their charges are the sandbox's (AWS's documented EC2 buckets, the
StartInstances/StopInstances resource buckets counting instances, the SSM buckets of
:data:`~fleetbench.scenarios.SSM_BUCKETS`); batch limits are remediate's
(:mod:`remediate.aws.apis`). Describe calls are left out (polling many ids a call
costs little of its bucket), and so are calls made once per rescue instance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fleetbench.scenarios import SSM_BUCKETS, Scenario, load
from remediate.aws.apis import operation
from remediate.language.durations import parse_duration
from remediate.sandbox import Bucket, Durations
from remediate.sandbox.throttling import (
    EC2_REQUEST_BUCKETS,
    EC2_RESOURCE_BUCKETS,
    ec2_bucket_class,
)


@dataclass(frozen=True)
class Hop:
    """One call of a target's path, and how long AWS takes before the next may go."""

    call: str
    """``service:Operation``."""
    then: float


Path = tuple[Hop, ...]


def offline_repair_path(durations: Durations) -> Path:
    """ec2-offline-repair.yaml, as its actions sequence the calls for one target."""
    d = durations
    return (
        Hop("ec2:CreateSnapshot", d.snapshot),  # backup: waited for until completed
        Hop("ec2:StopInstances", d.instance_stop),
        Hop("ec2:CreateTags", 0.0),  # the root volume is tagged with its instance
        Hop("ec2:DetachVolume", d.volume_detach),
        Hop("ec2:AttachVolume", d.volume_attach),  # to the rescue instance
        Hop("ssm:SendCommand", d.ssm_command),  # delete the channel file
        Hop("ec2:DetachVolume", d.volume_detach),
        Hop("ec2:AttachVolume", d.volume_attach),  # back, at its root device name
        Hop("ec2:ModifyInstanceAttribute", 0.0),  # DeleteOnTermination restored
        Hop("ec2:StartInstances", d.instance_start + d.instance_boot),  # then status ok
    )


def reboot_first_path(durations: Durations, reboots: int, settle: float) -> Path:
    """ec2-reboot-first.yaml for an instance the ``reboots``-th reboot brings back.

    A boot that crashed is known as such after the playbook's ``settle`` (status
    checks read sooner could still be the previous boot's), so every reboot but the
    last holds the target that long; the last one, until its boot passes."""
    failed = max(settle, durations.reboot)
    return (*(Hop("ec2:RebootInstances", failed) for _ in range(reboots - 1)),
            Hop("ec2:RebootInstances", durations.reboot))


def path_for(scenario: Scenario, durations: Durations) -> Path:
    if scenario.playbook == "offline-repair":
        return offline_repair_path(durations)
    if scenario.playbook == "reboot-first":
        settle = parse_duration(str(load("reboot-first").parameters["settle"].default))
        return reboot_first_path(durations, scenario.reboots_to_fix, settle or 0.0)
    raise KeyError(scenario.playbook)


Charge = tuple[str, Bucket, float]
"""(bucket name, bucket, tokens the whole Region's targets spend at this hop)."""


def charges(call: str, targets: int, ssm_buckets: Mapping[str, Bucket] = SSM_BUCKETS
            ) -> list[Charge]:
    """What ``targets`` targets making ``call`` spend from each bucket, at the least."""
    service, name = call.split(":")
    requests = float(math.ceil(targets / operation(service, name).batch_limit))
    found: list[Charge] = []
    if service == "ec2":
        bucket_class = ec2_bucket_class(name, {"InstanceId.1": "i-0"})
        found.append((f"ec2 {bucket_class}", EC2_REQUEST_BUCKETS[bucket_class], requests))
        if name in EC2_RESOURCE_BUCKETS:
            found.append((f"ec2 {name} instances", EC2_RESOURCE_BUCKETS[name],
                          float(targets)))
    elif call in ssm_buckets:
        found.append((call, ssm_buckets[call], requests))
    return found


@dataclass(frozen=True)
class BucketBound:
    bucket: str
    tokens: float
    """Tokens the Region's targets spend from it, at the least."""
    earliest: float
    """p_j of the binding hop."""
    drain: float
    """(T_j - C) / r of the binding hop: how long the bucket must refill."""
    tail: float
    """The path after the bucket's last hop."""

    @property
    def seconds(self) -> float:
        return self.earliest + self.drain + self.tail


@dataclass(frozen=True)
class Bound:
    critical_path: float
    buckets: tuple[BucketBound, ...]

    @property
    def seconds(self) -> float:
        return max([self.critical_path, *(b.seconds for b in self.buckets)])

    @property
    def binding(self) -> str:
        """What sets the bound: ``critical path`` or a bucket's name."""
        best = max(self.buckets, key=lambda b: b.seconds, default=None)
        if best is None or best.seconds <= self.critical_path:
            return "critical path"
        return best.bucket


def bound(path: Path, targets_per_region: int,
          charge: Callable[[str, int], list[Charge]] = charges) -> Bound:
    """The lower bound of the module docstring for ``targets_per_region`` targets."""
    starts = [sum(h.then for h in path[:index]) for index in range(len(path))]
    critical = sum(h.then for h in path)
    spent: dict[str, list[tuple[int, Bucket, float]]] = {}
    for index, hop in enumerate(path):
        for name, bucket, tokens in charge(hop.call, targets_per_region):
            spent.setdefault(name, []).append((index, bucket, tokens))
    results = []
    for name, hops in spent.items():
        bucket = hops[0][1]
        best: tuple[float, float, float] | None = None  # (p_j + drain, p_j, drain)
        for position, (index, _, _) in enumerate(hops):
            tokens = sum(t for _, _, t in hops[position:])
            drain = max(0.0, tokens - bucket.capacity) / bucket.refill_per_second
            candidate = (starts[index] + drain, starts[index], drain)
            if best is None or candidate[0] > best[0]:
                best = candidate
        assert best is not None
        tail = critical - starts[hops[-1][0]]
        total = sum(t for _, _, t in hops)
        results.append(BucketBound(name, total, best[1], best[2], tail))
    return Bound(critical, tuple(sorted(results, key=lambda b: -b.seconds)))


def throughput(path: Path, charge: Callable[[str, int], list[Charge]] = charges,
               fleet: int = 1_000_000) -> float:
    """Targets a second one Region's buckets sustain for this path (the slowest
    bucket's refill over what one target spends from it, batches amortized)."""
    spent: dict[str, tuple[Bucket, float]] = {}
    for hop in path:
        for name, bucket, tokens in charge(hop.call, fleet):
            spent[name] = (bucket, spent.get(name, (bucket, 0.0))[1] + tokens / fleet)
    return min(bucket.refill_per_second / per_target for bucket, per_target in spent.values())
