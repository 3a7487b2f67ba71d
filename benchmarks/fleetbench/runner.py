"""One measured run: a fresh sandbox fleet, one tool, the figures.

Three tools, all remediate's executor on the same playbook, sandbox and clock, so
only what the benchmark compares differs:

- ``remediate``: as designed: calls paced to AWS's buckets, batched, polled in bulk;
- ``one-at-a-time``: concurrency 1, one target after the other (what the public
  fleet scripts do). It runs over a sample of the fleet, in its first Region (the
  executor's concurrency counts per Region), and is extrapolated linearly (one
  target's time does not depend on the fleet's size or Region when nothing else
  runs), and says so;
- ``unpaced``: every client-side bucket set huge, so calls go out as soon as a
  target wants them and only AWS's ``RequestLimitExceeded`` and the retry policy's
  jittered backoff hold them back ("retries alone").

Every run ends by checking each target in the sandbox (running, status checks ok,
its own root volume back at its root device, the channel file gone) and that no
rescue instance is left running.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from botocore.config import Config

from fleetbench.meter import Cpu, Memory, MemoryMeter, MeteredClients, SimulatorMeter
from fleetbench.scenarios import (
    Scenario,
    Setup,
    load,
    params_for,
    prepare,
    throttle_policy,
)
from remediate.actions.contract import Target
from remediate.aws.apis import DEFAULT_BUCKETS, Bucket
from remediate.aws.clients import BOTOCORE_RETRIES
from remediate.clock import Clock, ScaledClock, VirtualClock
from remediate.executor.engine import Executor
from remediate.executor.events import Event, EventBus, StepFinished, TargetFinished
from remediate.journal import Journal
from remediate.sandbox import ApiCall, Durations, Fleet, FleetSpec, Sandbox, ThrottlePolicy

Tool = Literal["remediate", "one-at-a-time", "unpaced"]
TOOLS: Final[tuple[Tool, ...]] = ("remediate", "one-at-a-time", "unpaced")
UNPACED: Final = {name: Bucket(1e9, 1e9) for name in DEFAULT_BUCKETS}
"""Client-side buckets no run can empty: pacing off."""
_NO_RETRIES: Final = Config(retries=dict(BOTOCORE_RETRIES), max_pool_connections=32)
_IDS_PER_DESCRIBE: Final = 100


@dataclass(frozen=True)
class Measurement:
    scenario: Scenario
    tool: Tool
    targets: int
    """Targets this run worked on (a sample for one-at-a-time)."""
    makespan: float
    """Simulated seconds from the start of the run to its end (cleanup included),
    extrapolated to the scenario's fleet when ``extrapolated_from`` is set."""
    statuses: dict[str, int]
    fixed: int
    """Targets the sandbox shows repaired after the run."""
    rescue_left: int
    api_calls: int
    metered_requests: int
    """Requests the simulator meter saw (equal to ``api_calls`` when it sees them all)."""
    throttled: int
    calls_by_api: dict[str, int]
    """``service:Operation`` -> requests AWS answered (throttled ones left out)."""
    cpu: Cpu
    memory: Memory
    wall: float
    first_done: float | None
    """When the first target finished (one target's own time, for one-at-a-time)."""
    extrapolated_from: int | None = None
    build_seconds: float = 0.0
    setup: Setup = field(default_factory=Setup)
    client_cpu: dict[str, float] = field(default_factory=dict)
    """boto3 method -> CPU seconds in its calls (botocore + the simulator behind it)."""
    step_seconds: dict[str, float] = field(default_factory=dict)
    """Step id -> its mean duration over the targets (simulated seconds)."""
    throttled_by_api: dict[str, int] = field(default_factory=dict)
    """``service:Operation`` -> requests AWS answered with ``RequestLimitExceeded``."""
    calls: tuple[ApiCall, ...] = ()
    """Every request in order, when the run was asked to keep them."""

    @property
    def throttled_share(self) -> float:
        return self.throttled / self.api_calls if self.api_calls else 0.0

    @property
    def calls_per_target(self) -> float:
        return self.api_calls / self.targets if self.targets else 0.0

    def cpu_per_1000(self, seconds: float) -> float:
        return seconds * 1000 / self.targets if self.targets else 0.0


class _Timings:
    """When each target finished (on the run's clock), and how long each step took."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.finished: list[float] = []
        self.steps: dict[str, list[float]] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, TargetFinished):
            self.finished.append(self.clock.now())
        elif isinstance(event, StepFinished) and not event.rollback:
            seconds = (event.finished_at - event.started_at).total_seconds()
            self.steps.setdefault(event.step_id, []).append(seconds)

    def mean_steps(self) -> dict[str, float]:
        return {step: sum(times) / len(times) for step, times in self.steps.items()}


class _Progress:
    """A line on stderr each tenth of the fleet finished (long runs take an hour)."""

    def __init__(self, label: str, targets: int, clock: Clock) -> None:
        self.label, self.targets, self.clock = label, targets, clock
        self.step = max(1, targets // 10)
        self.done = 0
        self.wall0 = time.perf_counter()
        self.started = clock.now()

    def __call__(self, event: Event) -> None:
        if not isinstance(event, TargetFinished):
            return
        self.done += 1
        if self.done % self.step == 0 and self.targets >= 1000:
            print(f"... {self.label}: {self.done:,}/{self.targets:,} finished at "
                  f"{self.clock.now() - self.started:,.0f} s simulated, "
                  f"{time.perf_counter() - self.wall0:,.0f} s wall", file=sys.stderr, flush=True)


def make_clock(speed: float) -> Clock:
    """0: discrete-event simulation (never sleeps); N: N simulated seconds per real one."""
    return ScaledClock(speed) if speed > 0 else VirtualClock()


@contextmanager
def _journal() -> Iterator[Journal]:
    """An on-disk journal, as a real run keeps (its commits are part of the tool's cost)."""
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as folder:
        journal = Journal(Path(folder) / "journal.sqlite")
        try:
            yield journal
        finally:
            journal.close()


def run(scenario: Scenario, tool: Tool, setup: Setup, *, durations: Durations | None = None,
        speed: float = 0.0, sample: int = 20, workers: int = 16,
        policy: ThrottlePolicy | None = None, keep_calls: bool = False) -> Measurement:
    """Build the scenario's broken fleet in a fresh sandbox and fix it with ``tool``.

    ``policy``: how the sandbox throttles (default: AWS's buckets, :func:`throttle_policy`);
    ``keep_calls``: keep every request in :attr:`Measurement.calls` (small runs only).
    """
    durations = durations or Durations()
    size = min(sample, scenario.targets) if tool == "one-at-a-time" else scenario.targets
    clock = make_clock(speed)
    with Sandbox(clock=clock, durations=durations) as sandbox:
        spec = scenario.fleet_spec()
        if tool == "one-at-a-time":
            # One Region: the executor's concurrency counts per Region, and one target
            # after another over the whole fleet is what the public scripts do.
            spec = dataclasses.replace(_resized(spec, size), regions=spec.regions[:1])
        fleet = sandbox.build_fleet(spec)
        sandbox.set_throttle(policy or throttle_policy())
        playbook = prepare(load(scenario.playbook),
                           dataclasses.replace(setup, concurrency=1)
                           if tool == "one-at-a-time" else setup)
        clients = MeteredClients(
            lambda service, region: sandbox.client(service, region, config=_NO_RETRIES))
        timings = _Timings(clock)
        bus = EventBus()
        bus.subscribe(timings)
        bus.subscribe(_Progress(f"{scenario.label}, {tool}", size, clock))
        targets = [Target("ec2-instance", t.instance_id, t.region) for t in fleet.targets]
        simulator, memory = SimulatorMeter(), MemoryMeter()
        with _journal() as journal:
            executor = Executor(
                playbook, targets, clients=clients, clock=clock, bus=bus, journal=journal,
                run_id=f"bench-{tool}", params=params_for(playbook, dict(setup.params)),
                rate_limits=UNPACED if tool == "unpaced" else None, workers=workers)
            with simulator.installed(), memory.measuring():
                started, cpu0, wall0 = clock.now(), time.process_time(), time.perf_counter()
                result = executor.run()
                makespan = clock.now() - started
                cpu = Cpu(time.process_time() - cpu0, simulator.seconds, clients.seconds)
                wall = time.perf_counter() - wall0
        calls = sandbox.api_calls
        sandbox.set_throttle(None)
        fixed = count_fixed(sandbox, fleet)
        left = len(rescue_instances(sandbox, fleet))
    first = min(timings.finished) - started if timings.finished else None
    extrapolated = None
    if size < scenario.targets:
        extrapolated = size
        makespan = extrapolate(sorted(t - started for t in timings.finished), makespan,
                               scenario.targets)
    return Measurement(
        scenario=scenario, tool=tool, targets=size, makespan=makespan,
        statuses=result.summary, fixed=fixed, rescue_left=left, api_calls=len(calls),
        metered_requests=simulator.requests,
        throttled=sum(1 for c in calls if c.throttled),
        calls_by_api=dict(Counter(f"{c.service}:{c.operation}" for c in calls
                                  if not c.throttled)),
        cpu=cpu, memory=memory.result, wall=wall, first_done=first,
        extrapolated_from=extrapolated, build_seconds=fleet.build_seconds, setup=setup,
        client_cpu=dict(clients.by_method), step_seconds=timings.mean_steps(),
        throttled_by_api=dict(Counter(f"{c.service}:{c.operation}" for c in calls
                                      if c.throttled)),
        calls=tuple(calls) if keep_calls else ())


def _resized(spec: FleetSpec, size: int) -> FleetSpec:
    """A smaller fleet of the same kind (the one-at-a-time sample)."""
    if spec.reboot_fixable:
        return dataclasses.replace(spec, reboot_fixable=size)
    return dataclasses.replace(spec, plain=size)


def extrapolate(finished: Sequence[float], makespan: float, targets: int) -> float:
    """A one-at-a-time run's makespan over ``targets``, from a sample that finished
    targets at ``finished`` (sorted, from the run's start) and ended at ``makespan``.

    After the first target (which also launched the rescue instance), targets take
    the same time each; the sample's mean of those gaps stands for each missing one.
    """
    if len(finished) < 2:
        return makespan * targets / max(1, len(finished))
    each = (finished[-1] - finished[0]) / (len(finished) - 1)
    return makespan + each * (targets - len(finished))


def _chunks(ids: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def count_fixed(sandbox: Sandbox, fleet: Fleet) -> int:
    """Targets running with status checks ok, their own root volume at their root
    device, and no channel file on it."""
    fixed = 0
    for region in fleet.regions:
        mine = {t.instance_id: t for t in fleet.targets if t.region == region}
        ec2 = sandbox.client("ec2", region, config=_NO_RETRIES)
        for ids in _chunks(list(mine), _IDS_PER_DESCRIBE):
            ok = {s["InstanceId"] for s in ec2.describe_instance_status(InstanceIds=ids)[
                "InstanceStatuses"]
                if s["InstanceStatus"]["Status"] == "ok" and s["SystemStatus"]["Status"] == "ok"}
            reservations = ec2.describe_instances(InstanceIds=ids)["Reservations"]
            for instance in (i for r in reservations for i in r["Instances"]):
                target = mine[instance["InstanceId"]]
                roots = {m["DeviceName"]: m["Ebs"]["VolumeId"]
                         for m in instance.get("BlockDeviceMappings", [])}
                fixed += (instance["InstanceId"] in ok
                          and instance["State"]["Name"] == "running"
                          and roots.get(target.root_device_name) == target.root_volume_id
                          and not sandbox.channel_file_present(target.root_volume_id))
    return fixed


def rescue_instances(sandbox: Sandbox, fleet: Fleet) -> list[str]:
    """Rescue instances not terminated, in every Region (a run must leave none)."""
    found = []
    for region in fleet.regions:
        ec2 = sandbox.client("ec2", region, config=_NO_RETRIES)
        reservations = ec2.describe_instances(Filters=[
            {"Name": "tag:remediate:role", "Values": ["rescue"]},
            {"Name": "instance-state-name",
             "Values": ["pending", "running", "stopping", "stopped"]}])["Reservations"]
        found += [i["InstanceId"] for r in reservations for i in r["Instances"]]
    return found
