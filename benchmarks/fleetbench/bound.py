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

Durations drawn from a spread (``Durations.realistic``) differ per target; the sandbox
draws them per resource id, so each target's own path is known from the fleet
(:func:`target_paths`). Over those paths (:func:`bound_over`) the critical path is the
*largest* target's: every target must finish, so the slowest one's own sum is a floor
(the sum of each hop's largest draw would not be: no single target need have them all).
The bucket terms take each hop's *smallest* draw: a bucket's last call can go no sooner
than the earliest any target reaches that hop, and whoever makes it has at least the
shortest tail left. Both stay lower bounds; with fixed durations they equal the one-path
bound.

Buckets and their charges are the sandbox's under the scenario's throttle model
(AWS's documented EC2 buckets: one per API, sized from remediate's catalogue,
:mod:`remediate.aws.apis`, which cites AWS's page; or the older one-per-category
reading; less a neighbour's share), the resource buckets counting instances, the SSM
buckets of :data:`~fleetbench.scenarios.SSM_BUCKETS`; batch limits are remediate's.
Describe calls are left out (polling many ids a call costs little of its bucket), and
so are calls made once per rescue instance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from fleetbench.scenarios import SSM_BUCKETS, Scenario, load
from remediate.aws.apis import operation
from remediate.language.durations import parse_duration
from remediate.sandbox import Bucket, Durations
from remediate.sandbox.fleet import ROOT_VOLUME_GIB, Target
from remediate.sandbox.throttling import ec2_request_bucket, ec2_resource_bucket


@dataclass(frozen=True)
class Hop:
    """One call of a target's path, and how long AWS takes before the next may go."""

    call: str
    """``service:Operation``."""
    then: float


Path = tuple[Hop, ...]
WAIT = "wait:"
"""A hop's call prefix when it is waiting, not calling (it spends no bucket)."""


def offline_repair_path(durations: Durations) -> Path:
    """ec2-offline-repair.yaml, as its actions sequence the calls for one target.

    The backup is point-in-time when CreateSnapshot returns, so nothing waits for it
    until ``confirm_backup`` at the end: its last hop (``wait:``, no API call) is what is
    left of the snapshot's completion once the rest of the path is done. The stop skips
    the crash-looping guest's OS shutdown, and holds its capacity across the stop, as
    the playbook ships."""
    d = durations
    path = (
        Hop("ec2:CreateSnapshot", 0.0),  # backup: not waited for here
        Hop("ec2:CreateCapacityReservation", 0.0),  # its capacity held (hold_capacity)
        Hop("ec2:StopInstances", d.instance_stop_skip_os),
        Hop("ec2:CreateTags", 0.0),  # the root volume is tagged with its instance
        Hop("ec2:DetachVolume", d.volume_detach),
        Hop("ec2:AttachVolume", d.volume_attach),  # to the rescue instance
        Hop("ssm:SendCommand", d.ssm_command),  # delete the channel file
        Hop("ec2:DetachVolume", d.volume_detach),
        Hop("ec2:AttachVolume", d.volume_attach),  # back, at its root device name
        Hop("ec2:ModifyCapacityReservation", 0.0),  # the hold opened for the start
        Hop("ec2:StartInstances", d.instance_start),
        Hop("ec2:CancelCapacityReservation", 0.0),  # and released once it runs
        # DeleteOnTermination restored once running; then status checks pass.
        Hop("ec2:ModifyInstanceAttribute", d.instance_boot),
    )
    left = max(0.0, d.snapshot - sum(hop.then for hop in path))
    return (*path, Hop(f"{WAIT}backup-completed", left))


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


def target_paths(scenario: Scenario, durations: Durations, targets: Iterable[Target]
                 ) -> list[Path]:
    """Each target's own path, with the durations the sandbox draws for its instance and
    root volume (the scenario's targets are crash-looping: their stop is a stuck one)."""
    return [path_for(scenario, durations.for_target(
        t.instance_id, t.root_volume_id, ROOT_VOLUME_GIB, stuck=True)) for t in targets]


Charge = tuple[str, Bucket, float]
"""(bucket name, bucket, tokens the whole Region's targets spend at this hop)."""


def charges(call: str, targets: int, ssm_buckets: Mapping[str, Bucket] = SSM_BUCKETS,
            model: str = "documented", neighbour: float = 0.0) -> list[Charge]:
    """What ``targets`` targets making ``call`` spend from each bucket, at the least,
    under the throttle ``model``, a neighbour spending ``neighbour`` of each EC2 one."""
    if call.startswith(WAIT):
        return []
    service, name = call.split(":")
    requests = float(math.ceil(targets / operation(service, name).batch_limit))
    found: list[Charge] = []
    if service == "ec2":
        found.append((*ec2_request_bucket(name, {"InstanceId.1": "i-0"}, model), requests))
        resource = ec2_resource_bucket(name)
        if resource is not None:
            found.append((*resource, float(targets)))
        found = [(bucket_name, Bucket(b.capacity, b.refill_per_second * (1 - neighbour)),
                  tokens) for bucket_name, b, tokens in found]
    elif call in ssm_buckets:
        found.append((call, ssm_buckets[call], requests))
    return found


def charges_for(scenario: Scenario) -> Callable[[str, int], list[Charge]]:
    """:func:`charges` under the scenario's throttle model and neighbour."""
    return partial(charges, model=scenario.throttle_model, neighbour=scenario.neighbour)


@dataclass(frozen=True)
class BucketBound:
    bucket: str
    size: Bucket
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
        results.append(BucketBound(name, bucket, total, best[1], best[2], tail))
    return Bound(critical, tuple(sorted(results, key=lambda b: -b.seconds)))


def bound_over(paths: Sequence[Path], targets_per_region: int,
               charge: Callable[[str, int], list[Charge]] = charges) -> Bound:
    """The bound over targets whose paths (same calls, own durations) differ: the
    largest critical path, and each bucket's term from each hop's smallest duration
    (see the module docstring)."""
    floor = tuple(Hop(hop.call, min(path[index].then for path in paths))
                  for index, hop in enumerate(paths[0]))
    return Bound(max(sum(hop.then for hop in path) for path in paths),
                 bound(floor, targets_per_region, charge).buckets)


def throughput(path: Path, charge: Callable[[str, int], list[Charge]] = charges,
               fleet: int = 1_000_000) -> float:
    """Targets a second one Region's buckets sustain for this path (the slowest
    bucket's refill over what one target spends from it, batches amortized)."""
    spent: dict[str, tuple[Bucket, float]] = {}
    for hop in path:
        for name, bucket, tokens in charge(hop.call, fleet):
            spent[name] = (bucket, spent.get(name, (bucket, 0.0))[1] + tokens / fleet)
    return min(bucket.refill_per_second / per_target for bucket, per_target in spent.values())
