"""Helpers for action tests: an Env (sandbox, clock, SyncRuntime) and an Interleaver.

The ``action_env`` fixture lives in ``conftest_sandbox_actions`` (register it with
``pytest_plugins = ["conftest_sandbox_actions"]``).

:class:`Interleaver` stands in for the executor's scheduler where a test needs
several targets at once: it runs generators round-robin on one thread, really
parks a ``Gate`` until ``open_gate`` names it, and polls each ``Wait`` once a
round, advancing the virtual clock when nobody can move.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore_support import NO_RETRIES

from remediate.actions import registry
from remediate.actions.contract import StepContext, Target
from remediate.actions.requests import (
    ActionRun,
    AwsError,
    Call,
    Gate,
    Sleep,
    Wait,
    WaitFailed,
    WaitTimeout,
)
from remediate.clock import VirtualClock
from remediate.executor.driver import SyncRuntime
from remediate.language.problems import Problems
from remediate.sandbox import Durations, Fleet, FleetSpec, Sandbox

SCRIPTS = Path(__file__).resolve().parents[2] / "playbooks" / "scripts"
REGION = "us-east-1"


class GateRuntime(SyncRuntime):
    """A SyncRuntime that remembers which gates were opened, can fail chosen calls and
    run a hook after others (``after[operation](response)``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened: list[str] = []
        self.failing: dict[str, AwsError] = {}
        self.after: dict[str, Callable[[Mapping[str, Any]], None]] = {}

    def open_gate(self, key: str) -> None:
        super().open_gate(key)
        self.opened.append(key)

    def call(self, call: Call, region: str) -> Mapping[str, Any]:
        if call.operation in self.failing:
            self.calls.append(call)
            raise self.failing[call.operation]
        response = super().call(call, region)
        if call.operation in self.after:
            self.after[call.operation](response)
        return response

    def count(self, operation: str) -> int:
        return sum(1 for c in self.calls if c.operation == operation)


@dataclass
class Env:
    sandbox: Sandbox
    clock: VirtualClock
    runtime: GateRuntime
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict)

    def client(self, service: str, region: str = REGION) -> Any:
        if (service, region) not in self._clients:
            self._clients[(service, region)] = self.sandbox.client(service, region,
                                                                   config=NO_RETRIES)
        return self._clients[(service, region)]

    def new_runtime(self) -> GateRuntime:
        """A fresh runtime (a new process after a crash): no services, no memory."""
        return GateRuntime(self.client, self.clock)

    def context(self, target: Target, facts: Mapping[str, Any] | None = None, *,
                runtime: SyncRuntime | None = None, step_id: str = "step",
                base_dir: str = str(SCRIPTS.parent), run_id: str = "sync-run",
                accepted: frozenset[str] = frozenset(),
                sent_before: Callable[[str], bool] | None = None) -> StepContext:
        return StepContext(run_id=run_id, target=target, facts=dict(facts or {}),
                           runtime=runtime or self.runtime, step_id=step_id, base_dir=base_dir,
                           accepted=accepted, sent_before=sent_before)

    def start(self, action: str, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        """The action's generator, its params checked (defaults applied) as the executor does."""
        found = registry.get(action)
        assert found is not None, action
        problems = Problems()
        checked = found.params.check(dict(params), ("with",), problems)
        assert not problems, [p.message for p in problems.items]
        return found.run(ctx, checked)

    def run(self, action: str, ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
        runtime = ctx.runtime
        assert isinstance(runtime, SyncRuntime)
        return runtime.drive(self.start(action, ctx, params), ctx.target.region)


@contextmanager
def sandbox_env(durations: Durations | None = None) -> Iterator[Env]:
    clock = VirtualClock()
    with Sandbox(clock=clock, durations=durations or Durations()) as sandbox:
        env = Env(sandbox, clock, None)  # type: ignore[arg-type]
        env.runtime = GateRuntime(env.client, clock)
        yield env


def build(env: Env, spec: FleetSpec) -> Fleet:
    return env.sandbox.build_fleet(spec)


def ec2_target(instance_id: str) -> Target:
    return Target("ec2-instance", instance_id, REGION)


CRASHED = "crashed"


@dataclass
class _Task:
    gen: ActionRun
    value: Any = None
    error: BaseException | None = None
    wait: Wait | None = None
    deadline: float = 0.0
    gate: str | None = None
    gate_until: float = float("inf")  # a Gate's timeout: resume then even if still closed


class Interleaver:
    """Round-robin scheduler for several generators on one GateRuntime (see module doc)."""

    def __init__(self, runtime: GateRuntime, region: str = REGION, poll: float = 5.0) -> None:
        self.runtime = runtime
        self.region = region
        self.poll = poll
        self.parked: list[tuple[str, str]] = []  # (task name, gate key), in parking order

    def run(self, gens: Mapping[str, ActionRun],
            crash_after: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Each name -> its outputs, or the exception that ended it.

        ``crash_after`` maps a name to an operation: once that task's call of it was
        answered, the task is closed mid-flight (as a crash would) with result CRASHED.
        """
        crash_after = dict(crash_after or {})
        tasks = {name: _Task(gen) for name, gen in gens.items()}
        results: dict[str, Any] = {}
        clock = self.runtime.clock
        assert isinstance(clock, VirtualClock)
        while tasks:
            moved = False
            for name in list(tasks):
                task = tasks[name]
                if task.gate is not None:
                    if task.gate not in self.runtime.opened and clock.now() < task.gate_until:
                        continue
                    task.gate, task.gate_until = None, float("inf")
                if task.wait is not None and not self._poll(task, clock.now()):
                    continue
                moved = True
                try:
                    request = (task.gen.throw(task.error) if task.error is not None
                               else task.gen.send(task.value))
                except StopIteration as stop:
                    results[name] = stop.value
                    del tasks[name]
                    continue
                except Exception as exc:  # the action failed: that is its result
                    results[name] = exc
                    del tasks[name]
                    continue
                task.value, task.error = None, None
                self._serve(name, task, request, clock)
                if isinstance(request, Call) and crash_after.get(name) == request.operation:
                    task.gen.close()
                    results[name] = CRASHED
                    del tasks[name]
            if tasks and not moved:
                if all(t.gate is not None and t.gate_until == float("inf")
                       for t in tasks.values()):
                    raise AssertionError(f"deadlock: every task is parked: {self.parked}")
                clock.advance(self.poll)
        return results

    def _serve(self, name: str, task: _Task, request: Any, clock: VirtualClock) -> None:
        if isinstance(request, Call):
            try:
                task.value = self.runtime.call(request, self.region)
            except AwsError as exc:
                task.error = exc
        elif isinstance(request, Sleep):
            clock.advance(request.seconds)
        elif isinstance(request, Gate):
            if request.key not in self.runtime.opened:
                task.gate = request.key
                if request.timeout is not None:
                    task.gate_until = clock.now() + request.timeout
                self.parked.append((name, request.key))
        elif isinstance(request, Wait):
            task.wait, task.deadline = request, clock.now() + request.timeout
            self._poll(task, clock.now())
        else:
            raise TypeError(request)

    def _poll(self, task: _Task, now: float) -> bool:
        """Whether the task's wait is over (its value or error set)."""
        wait = task.wait
        assert wait is not None
        try:
            record = self.runtime.describe(wait, self.region)
        except AwsError as exc:
            task.wait, task.error = None, exc
            return True
        if wait.until(record):
            task.wait, task.value = None, record
            return True
        reason = wait.failed(record)
        if reason:
            task.wait, task.error = None, WaitFailed(f"{wait.what}: {reason}")
            return True
        if now >= task.deadline:
            task.wait, task.error = None, WaitTimeout(f"timed out waiting for {wait.what}")
            return True
        return False


def detach_root(env: Env, instance_id: str, volume_id: str) -> None:
    """Stop ``instance_id`` and take its root volume off (what the EC2 steps do first)."""
    ec2 = env.client("ec2")
    ec2.stop_instances(InstanceIds=[instance_id])
    env.clock.advance(env.sandbox.durations.instance_stop + 1)
    ec2.detach_volume(VolumeId=volume_id, InstanceId=instance_id)
    env.clock.advance(env.sandbox.durations.volume_detach + 1)
    assert volume_state(env, volume_id) == "available"


def volume_state(env: Env, volume_id: str) -> str:
    return str(env.client("ec2").describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"])


def instance_state(env: Env, instance_id: str) -> str:
    described = env.client("ec2").describe_instances(InstanceIds=[instance_id])
    return str(described["Reservations"][0]["Instances"][0]["State"]["Name"])


def launch_instance(env: Env, image_id: str, subnet_id: str, boot: bool = True) -> str:
    """A healthy instance (Online in SSM once booted) to run commands on."""
    instance_id = str(env.client("ec2").run_instances(
        ImageId=image_id, InstanceType="m5.large", MinCount=1, MaxCount=1, SubnetId=subnet_id,
    )["Instances"][0]["InstanceId"])
    if boot:
        durations = env.sandbox.durations
        env.clock.advance(durations.instance_start + durations.instance_boot + 1)
    return instance_id
