"""One measured run: a fresh sandbox fleet, one tool, the figures.

Five tools on the same sandbox, fleet and simulated clock:

- ``remediate``: as designed: calls paced to AWS's buckets, batched, polled in bulk;
- ``tuned-script`` and ``ssm-automation``: the honest baselines, boto3 scripts of
  N worker threads (:mod:`fleetbench.script`): what an SRE writes with the SDK's
  standard retry mode, and a model of AWS's own SSM Automation route;

and two ablations of remediate's executor, so only the compared property differs:

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
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from botocore.config import Config

from fleetbench.bound import Bound, bound_over, charges_for, target_paths
from fleetbench.meter import Cpu, Memory, MemoryMeter, MeteredClients, SimulatorMeter
from fleetbench.scenarios import (
    Scenario,
    Setup,
    load,
    params_for,
    prepare,
    throttle_policy,
)
from fleetbench.script import ssm_automation, tuned_script
from fleetbench.threadclock import ThreadedVirtualClock, botocore_sleeps
from remediate.actions.contract import Target
from remediate.aws.apis import DEFAULT_BUCKETS, Bucket
from remediate.aws.clients import BOTOCORE_RETRIES
from remediate.clock import Clock, ScaledClock, VirtualClock
from remediate.executor.engine import Executor
from remediate.executor.events import Event, EventBus, StepFinished, TargetFinished
from remediate.journal import Journal
from remediate.sandbox import ApiCall, Durations, Fleet, FleetSpec, Sandbox, ThrottlePolicy

Tool = Literal["remediate", "tuned-script", "ssm-automation", "one-at-a-time", "unpaced"]
TOOLS: Final[tuple[Tool, ...]] = (
    "remediate", "tuned-script", "ssm-automation", "one-at-a-time", "unpaced")
DEFAULT_TOOLS: Final[tuple[Tool, ...]] = ("remediate", "tuned-script", "ssm-automation")
"""What a run compares unless told otherwise: the two ablations are opt-in."""
SCRIPTS: Final[frozenset[Tool]] = frozenset({"tuned-script", "ssm-automation"})
"""Baselines that are boto3 scripts (:mod:`fleetbench.script`), not remediate."""
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
    bound: Bound | None = None
    """The lower bound with the durations this run's fleet drew (the whole fleet runs;
    None for a sample, whose figure is extrapolated to the scenario's fleet)."""
    workers: int | None = None
    """A script's worker threads (the tuned script's N; SSM Automation's concurrency)."""

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


def make_clock(speed: float, threads: bool = False) -> Clock:
    """0: discrete-event simulation (never sleeps; ``threads``: one that waits for every
    thread of a script); N: N simulated seconds per real one."""
    if speed > 0:
        return ScaledClock(speed)
    return ThreadedVirtualClock() if threads else VirtualClock()


@contextmanager
def _journal() -> Iterator[Journal]:
    """An on-disk journal, as a real run keeps (its commits are part of the tool's cost)."""
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as folder:
        journal = Journal(Path(folder) / "journal.sqlite")
        try:
            yield journal
        finally:
            journal.close()


@dataclass
class _Drive:
    """What fixing the fleet gave back, whoever did it."""

    statuses: dict[str, int]
    client_seconds: float = 0.0
    client_cpu: dict[str, float] = field(default_factory=dict)
    finished: list[float] = field(default_factory=list)
    step_seconds: dict[str, float] = field(default_factory=dict)
    workers: int | None = None


def _drive_executor(sandbox: Sandbox, fleets: list[Fleet], clock: Clock, scenario: Scenario,
                    tool: Tool, setup: Setup, workers: int, size: int,
                    measuring: Callable[[], AbstractContextManager[None]]) -> _Drive:
    """remediate's executor (as designed, unpaced or one at a time) over the fleet."""
    playbook = prepare(load(scenario.playbook),
                       dataclasses.replace(setup, concurrency=1)
                       if tool == "one-at-a-time" else setup)
    clients = MeteredClients(lambda service, region, account: sandbox.client(
        service, region, config=_NO_RETRIES, account=account))
    timings = _Timings(clock)
    bus = EventBus()
    bus.subscribe(timings)
    bus.subscribe(_Progress(f"{scenario.label}, {tool}", size, clock))
    targets = [Target("ec2-instance", t.instance_id, t.region, account=t.account)
               for fleet in fleets for t in fleet.targets]
    with _journal() as journal:
        executor = Executor(
            playbook, targets, clients=clients, clock=clock, bus=bus, journal=journal,
            run_id=f"bench-{tool}", params=params_for(playbook, dict(setup.params)),
            rate_limits=UNPACED if tool == "unpaced" else None, workers=workers)
        with measuring():
            result = executor.run()
    return _Drive(result.summary, clients.seconds, dict(clients.by_method),
                  timings.finished, timings.mean_steps())


def _drive_script(sandbox: Sandbox, fleets: list[Fleet], clock: Clock, tool: Tool,
                  workers: int, measuring: Callable[[], AbstractContextManager[None]]
                  ) -> _Drive:
    """A baseline of :mod:`fleetbench.script` over the fleet (one account: the scripts
    are written for one); its statuses are what it gave up on ("failed: <reason>") and,
    for the rest, "finished"."""
    if len(fleets) != 1:
        raise ValueError("the script baselines run in one account")
    [fleet] = fleets
    with botocore_sleeps(clock), measuring():
        if tool == "tuned-script":
            result = tuned_script(sandbox, fleet, clock, workers)
        else:
            result = ssm_automation(sandbox, fleet, clock)
    statuses = {f"failed: {reason}": count for reason, count in result.failures.items()}
    finished = len(fleet.targets) - sum(result.failures.values())
    if finished:
        statuses["finished"] = finished
    return _Drive(statuses, workers=result.workers)


def run(scenario: Scenario, tool: Tool, setup: Setup, *, durations: Durations | None = None,
        speed: float = 0.0, sample: int = 20, workers: int | None = None,
        policy: ThrottlePolicy | None = None, keep_calls: bool = False) -> Measurement:
    """Build the scenario's broken fleet in a fresh sandbox and fix it with ``tool``.

    ``policy``: how the sandbox throttles (default: the scenario's throttle model);
    ``keep_calls``: keep every request in :attr:`Measurement.calls` (small runs only);
    ``workers``: the executor's I/O threads, or the tuned script's worker threads.
    """
    durations = durations or Durations.realistic()
    size = min(sample, scenario.targets) if tool == "one-at-a-time" else scenario.targets
    script = tool in SCRIPTS
    clock = make_clock(speed, threads=script)
    with Sandbox(clock=clock, durations=durations) as sandbox:
        specs = scenario.fleet_specs()
        if tool == "one-at-a-time":
            # One place: the executor's concurrency counts per account and Region, and
            # one target after another over the whole fleet is what public scripts do.
            specs = [dataclasses.replace(_resized(specs[0], size),
                                         regions=specs[0].regions[:1])]
        fleets = [sandbox.build_fleet(spec) for spec in specs]
        seen = None if size < scenario.targets else bound_over(target_paths(
            scenario, durations, [t for fleet in fleets for t in fleet.targets]),
            scenario.per_region, charges_for(scenario))
        sandbox.set_throttle(policy or throttle_policy(scenario))
        simulator, memory = SimulatorMeter(), MemoryMeter()
        figures: dict[str, float] = {}

        @contextmanager
        def measuring() -> Iterator[None]:
            with simulator.installed(), memory.measuring():
                figures.update(started=clock.now(), cpu=time.process_time(),
                               wall=time.perf_counter())
                yield
                figures.update(makespan=clock.now() - figures["started"],
                               cpu=time.process_time() - figures["cpu"],
                               wall=time.perf_counter() - figures["wall"])

        drive = (_drive_script(sandbox, fleets, clock, tool, workers, measuring) if script
                 else _drive_executor(sandbox, fleets, clock, scenario, tool, setup, workers,
                                      size, measuring))
        calls = sandbox.api_calls
        sandbox.set_throttle(None)
        fixed = sum(count_fixed(sandbox, fleet) for fleet in fleets)
        left = sum(len(rescue_instances(sandbox, fleet)) for fleet in fleets)
    started, makespan = figures["started"], figures["makespan"]
    cpu = Cpu(figures["cpu"], simulator.seconds, drive.client_seconds)
    first = min(drive.finished) - started if drive.finished else None
    extrapolated = None
    if size < scenario.targets:
        extrapolated = size
        makespan = extrapolate(sorted(t - started for t in drive.finished), makespan,
                               scenario.targets)
    return Measurement(
        scenario=scenario, tool=tool, targets=size, makespan=makespan,
        statuses=drive.statuses, fixed=fixed, rescue_left=left, api_calls=len(calls),
        metered_requests=simulator.requests,
        throttled=sum(1 for c in calls if c.throttled),
        calls_by_api=dict(Counter(f"{c.service}:{c.operation}" for c in calls
                                  if not c.throttled)),
        cpu=cpu, memory=memory.result, wall=figures["wall"], first_done=first,
        extrapolated_from=extrapolated,
        build_seconds=sum(fleet.build_seconds for fleet in fleets), setup=setup,
        client_cpu=drive.client_cpu, step_seconds=drive.step_seconds,
        throttled_by_api=dict(Counter(f"{c.service}:{c.operation}" for c in calls
                                      if c.throttled)),
        calls=tuple(calls) if keep_calls else (), bound=seen, workers=drive.workers)


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
        ec2 = sandbox.client("ec2", region, config=_NO_RETRIES, account=fleet.account)
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
        ec2 = sandbox.client("ec2", region, config=_NO_RETRIES, account=fleet.account)
        reservations = ec2.describe_instances(Filters=[
            {"Name": "tag:remediate:role", "Values": ["rescue"]},
            {"Name": "instance-state-name",
             "Values": ["pending", "running", "stopping", "stopped"]}])["Reservations"]
        found += [i["InstanceId"] for r in reservations for i in r["Instances"]]
    return found
