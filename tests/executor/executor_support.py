"""Helpers for the executor's tests: a scriptable fake AWS, a harness, test-only actions.

The fake AWS answers from a handler function and records every request, for unit
tests of the call layer and the poller (and the CPU benchmark, where moto's own
cost would drown the scheduler's). Integration tests use the sandbox instead.

Test actions go by ``test.*`` names; they are tiny on purpose, so an integration
test shows the executor's behaviour, not an action's. They are in the registry
only while a test of this folder runs (:func:`registered_test_actions`), so other
tests' listings of the registry never see them.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore import xform_name
from botocore.exceptions import ClientError
from botocore_support import NO_RETRIES

from remediate.actions import registry
from remediate.actions.contract import Action, Plan, StepContext, Target, calls
from remediate.actions.requests import ActionRun, Call, Gate, StepFailed, observe
from remediate.aws.apis import OPERATIONS
from remediate.aws.ratelimit import RateLimiter
from remediate.aws.retry import RetryPolicy
from remediate.clock import VirtualClock
from remediate.executor.calls import CallLayer
from remediate.executor.events import Event, EventBus
from remediate.executor.poller import Poller
from remediate.executor.runtime import Gates, handle_sleeps
from remediate.executor.scheduler import Caller, Scheduler
from remediate.journal import Journal
from remediate.language.model import (
    Execution,
    Guards,
    Playbook,
    Step,
    TargetSelector,
)
from remediate.language.schema import Bool, Field, Int, ListOf, Record, Str

REGION = "us-east-1"
# A folder that exists, so script paths in params resolve (playbooks/scripts/...).
PLAYBOOK_SOURCE = str(Path(__file__).resolve().parents[2] / "playbooks" / "under-test.yaml")
_NAMES = {xform_name(op.name): op.name for op in OPERATIONS.values()}

Handler = Callable[[str, str, dict[str, Any]], Mapping[str, Any]]


def client_error(code: str, message: str = "", operation: str = "Op",
                 request_id: str = "req-err") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"RequestId": request_id}}, operation)


@dataclass(frozen=True)
class Request:
    account: str
    region: str
    service: str
    operation: str
    params: dict[str, Any]


class FakeAws:
    """``(account, region, service) -> client``; each method call goes to ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self._lock = threading.Lock()

    def __call__(self, account: str, region: str, service: str) -> Any:
        return _FakeClient(self, account, region, service)

    def count(self, operation: str) -> int:
        return sum(1 for r in self.requests if r.operation == operation)

    def of(self, operation: str) -> list[Request]:
        return [r for r in self.requests if r.operation == operation]


class _FakeClient:
    def __init__(self, aws: FakeAws, account: str, region: str, service: str) -> None:
        self._aws, self._account, self._region, self._service = aws, account, region, service

    def __getattr__(self, method: str) -> Callable[..., Mapping[str, Any]]:
        operation = _NAMES[method]

        def call(**params: Any) -> Mapping[str, Any]:
            with self._aws._lock:
                self._aws.requests.append(
                    Request(self._account, self._region, self._service, operation, params))
            response = dict(self._aws.handler(self._service, operation, params))
            response.setdefault("ResponseMetadata", {"RequestId": f"req-{operation}"})
            return response

        return call


def instances_response(ids: Iterable[str], state: str = "running") -> dict[str, Any]:
    return {"Reservations": [{"Instances": [
        {"InstanceId": i, "State": {"Name": state}, "Placement": {"AvailabilityZone": "az-a"}}
        for i in ids]}]}


def filter_ids(params: Mapping[str, Any]) -> list[str]:
    return [v for f in params.get("Filters", []) for v in f["Values"]]


@dataclass
class Harness:
    """The scheduler with the call layer, poller, gates and sleeps, over a fake AWS."""

    aws: FakeAws
    clock: VirtualClock = field(default_factory=VirtualClock)
    limits: Mapping[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    poll_interval: float = 15.0
    batch_window: float = 0.0
    retry: RetryPolicy | None = None
    journal: Journal = field(default_factory=Journal.memory)
    events: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.bus = EventBus()
        self.bus.subscribe(self.events.append)
        self.scheduler = Scheduler(self.clock, workers=4)
        self.calls = CallLayer(self.scheduler, self.aws, RateLimiter(self.clock, self.limits),
                               self.journal, self.bus, "run-1", dry_run=self.dry_run,
                               retry=self.retry, batch_window=self.batch_window)
        self.poller = Poller(self.scheduler, self.poll_interval)
        self.gates = Gates(self.scheduler)
        handle_sleeps(self.scheduler)
        self.scheduler.on_stall = self.gates.fail_parked

    def run(self, *tasks: Generator[Any, Any, Any] | tuple[Generator[Any, Any, Any], Caller]
            ) -> list[tuple[Any, BaseException | None]]:
        """Run tasks to the end; each one's (result, error), in order."""
        results: list[tuple[Any, BaseException | None]] = [(None, None)] * len(tasks)
        for index, task in enumerate(tasks):
            gen, caller = task if isinstance(task, tuple) else (task, caller_for(f"t{index}"))

            def done(result: Any, error: BaseException | None, index: int = index) -> None:
                results[index] = (result, error)

            self.scheduler.spawn(f"task {index}", gen, caller, done)
        self.scheduler.run()
        return results

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def caller_for(target_id: str, step_id: str = "step", region: str = REGION) -> Caller:
    return Caller("default", region, f"default/{region}/{target_id}", step_id)


def one(request: Any) -> Generator[Any, Any, Any]:
    """A task that yields one request and returns its answer."""
    return (yield request)


# ---- playbooks ---------------------------------------------------------------------


def step(step_id: str, action: str, params: Mapping[str, Any] | None = None,
         **kwargs: Any) -> Step:
    return Step(step_id, action, dict(params or {}), **kwargs)


def playbook(*steps: Step, rollback: tuple[Step, ...] = (), guards: Guards | None = None,
             concurrency: int = 50, poll_interval: float = 15.0,
             default_timeout: float = 1800.0) -> Playbook:
    return Playbook(
        version=1, name="under-test", description="", parameters={},
        targets=TargetSelector(kind="ec2-instance"), steps=tuple(steps), rollback=rollback,
        guards=guards or Guards(pause_after_canary=False),
        execution=Execution(concurrency=concurrency, poll_interval=poll_interval,
                            default_timeout=default_timeout),
        source=PLAYBOOK_SOURCE)


def ec2_targets(ids: Iterable[str], region: str = REGION) -> list[Target]:
    return [Target("ec2-instance", i, region) for i in ids]


def sandbox_clients(sandbox: Any) -> Callable[[str, str, str], Any]:
    @functools.cache
    def lookup(account: str, region: str, service: str) -> Any:
        return sandbox.client(service, region, config=NO_RETRIES)

    return lookup


# ---- test-only actions ----------------------------------------------------------------


class _TestAction(Action):
    kinds = frozenset({"ec2-instance"})

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        return Plan(calls=calls(*getattr(self, "planned", ()), mutating=self.mutating))


class InspectForTests(_TestAction):
    """Facts from one batched observe (no DescribeInstanceAttribute per target)."""

    name = "test.inspect"
    summary = "read the instance's state"

    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        instance = yield observe("instance", ctx.target.id)
        if instance is None:
            raise StepFailed(f"{ctx.target.id} not found")
        return {"id": ctx.target.id, "state": instance["State"]["Name"],
                "availability_zone": instance["Placement"]["AvailabilityZone"]}


class MutatingInspect(_TestAction):
    """A buggy inspect action: it tries to stop the instance."""

    name = "test.buggy_inspect"
    summary = "inspect, and (a bug) stop the instance"

    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        yield Call("ec2", "StopInstances", {"InstanceIds": [ctx.target.id]},
                   batch_key="InstanceIds")
        return {"id": ctx.target.id}


class Tag(_TestAction):
    """Tag the instance (one CreateTags for many targets); optionally fail afterwards."""

    name = "test.tag"
    summary = "tag the instance"
    mutating = True
    planned = ("ec2:CreateTags",)
    params = Record(fields={
        "key": Field(Str(), default="fixed"),
        "value": Field(Str(templated=True), default="yes"),
        "fail_ids": Field(ListOf(item=Str()), default=[]),
    })
    outputs = {"tagged": "the instance id"}

    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        yield Call("ec2", "CreateTags", {"Resources": [ctx.target.id], "Tags": [
            {"Key": params["key"], "Value": params["value"]}]}, batch_key="Resources")
        if ctx.target.id in params["fail_ids"]:
            raise StepFailed(f"{ctx.target.id} was told to fail")
        return {"tagged": ctx.target.id}


class Flaky(_TestAction):
    """Fails its first ``failures`` attempts on each target, then succeeds."""

    name = "test.flaky"
    summary = "fail a few times"
    params = Record(fields={"failures": Field(Int(minimum=0), default=2)})
    attempts: dict[tuple[str, str], int] = {}

    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        key = (ctx.run_id, ctx.target.id)
        self.attempts[key] = self.attempts.get(key, 0) + 1
        yield observe("instance", ctx.target.id)
        if self.attempts[key] <= params["failures"]:
            raise StepFailed(f"attempt {self.attempts[key]} failed")
        return {"attempts": self.attempts[key]}


class Hang(_TestAction):
    """Parks on a gate nobody opens, catching everything (it must still time out)."""

    name = "test.hang"
    summary = "never finish"
    params = Record(fields={"swallow": Field(Bool(), default=True)})

    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        while True:
            try:
                yield Gate(f"never:{ctx.target.id}")
            except Exception:
                if not params["swallow"]:
                    raise


FLEET_TAGS = frozenset({"incident", "sandbox:kind"})


def tags_of(sandbox: Any, instance_id: str) -> dict[str, str]:
    """The instance's tags other than those the sandbox's fleet builder put on."""
    ec2 = sandbox.client("ec2", REGION, config=NO_RETRIES)
    found = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [instance_id]}])
    return {t["Key"]: t["Value"] for t in found["Tags"] if t["Key"] not in FLEET_TAGS}


def when(bus: EventBus, test: Callable[[Event], bool], then: Callable[[], None]) -> None:
    """Call ``then`` the first time an event passes ``test`` (like a Ctrl-C at that moment)."""
    fired = False

    def watch(event: Event) -> None:
        nonlocal fired
        if not fired and test(event):
            fired = True
            then()

    bus.subscribe(watch)


def events_of(events: Iterable[Event], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def swap_playbook(rescue_ami: str, *extra: Step, concurrency: int = 50,
                  guards: Guards | None = None, source: str = PLAYBOOK_SOURCE) -> Playbook:
    """The offline repair through a rescue instance, with the rollback that undoes it.

    ``extra`` steps go between attaching the volume to the rescue instance and the
    repair (where a failure hurts most: the root volume is off its instance)."""
    pb = playbook(
        step("snapshot", "ec2.snapshot_root"), step("stop", "ec2.stop"),
        step("detach", "ec2.detach_root"),
        step("attach", "rescue.attach_volume", {"rescue_image_id": rescue_ami}), *extra,
        step("repair", "rescue.repair"), step("unrescue", "rescue.detach_volume"),
        step("reattach", "ec2.reattach_root"), step("restore", "ec2.restore_root_settings"),
        step("verify", "ec2.verify_status"),
        rollback=(step("rb_unrescue", "rescue.detach_volume"),
                  step("rb_reattach", "ec2.reattach_root"),
                  step("rb_restore", "ec2.restore_root_settings")),
        guards=guards, concurrency=concurrency)
    return Playbook(**{**pb.__dict__, "source": source})


def root_in_place(sandbox: Any, target: Any) -> bool:
    """The target's own root volume is attached at its root device, and it runs."""
    ec2 = sandbox.client("ec2", target.region, config=NO_RETRIES)
    instance = ec2.describe_instances(InstanceIds=[target.instance_id])[
        "Reservations"][0]["Instances"][0]
    mapping = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]}
    return (instance["State"]["Name"] == "running"
            and mapping.get(target.root_device_name) == target.root_volume_id)


def fixed(sandbox: Any, target: Any) -> bool:
    """Root back in place, channel file gone, status checks ok."""
    ec2 = sandbox.client("ec2", target.region, config=NO_RETRIES)
    status = ec2.describe_instance_status(InstanceIds=[target.instance_id])["InstanceStatuses"]
    return (root_in_place(sandbox, target)
            and not sandbox.channel_file_present(target.root_volume_id)
            and bool(status) and status[0]["InstanceStatus"]["Status"] == "ok")


def rescue_instances(sandbox: Any, region: str = REGION) -> list[str]:
    """Rescue instances not terminated (the pool's cleanup must leave none)."""
    ec2 = sandbox.client("ec2", region, config=NO_RETRIES)
    found = ec2.describe_instances(Filters=[
        {"Name": "tag:remediate:role", "Values": ["rescue"]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])
    return [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]]


TEST_ACTIONS: tuple[type[Action], ...] = (InspectForTests, MutatingInspect, Tag, Flaky, Hang)


@contextmanager
def registered_test_actions() -> Iterator[None]:
    """The test actions in the registry for the duration (then exactly as before)."""
    registry.names()  # load the real actions first
    for cls in TEST_ACTIONS:
        registry.register(cls)
    try:
        yield
    finally:
        for cls in TEST_ACTIONS:
            del registry._ACTIONS[cls.name]
