"""Drive one action's generator synchronously: for action tests and one-off calls.

The real executor (:mod:`remediate.executor.engine`) batches, paces, journals
and retries; this driver does none of that. Each Call goes straight to a boto3
client, each Wait polls its resource every ``poll`` seconds on the clock, Sleep
sleeps on the clock. With a VirtualClock nothing waits for real.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from botocore import xform_name

from remediate.actions.contract import RunService, StepContext, Target
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
from remediate.aws.errors import from_exception
from remediate.aws.resources import RESOURCES
from remediate.clock import Clock
from remediate.language.durations import format_duration

ClientFactory = Callable[[str, str], Any]  # (service, region) -> boto3 client


class SyncRuntime:
    """A Runtime for one thread: services live for the runtime's lifetime."""

    def __init__(self, clients: ClientFactory, clock: Clock, poll: float = 5.0) -> None:
        self.clients = clients
        self.clock = clock
        self.poll = poll
        self.calls: list[Call] = []
        self._services: dict[type, RunService] = {}
        self._open: set[str] = set()

    def open_gate(self, key: str) -> None:
        self._open.add(key)

    def service(self, cls: type[Any]) -> Any:
        if cls not in self._services:
            self._services[cls] = cls("sync-run")
        return self._services[cls]

    def call(self, call: Call, region: str) -> Mapping[str, Any]:
        self.calls.append(call)
        client = self.clients(call.service, region)
        try:
            result: Mapping[str, Any] = getattr(client, xform_name(call.operation))(**call.params)
        except Exception as exc:  # every boto3 failure becomes an AwsError for the action
            raise from_exception(exc, call.operation) from exc
        return result

    def describe(self, wait: Wait, region: str) -> Mapping[str, Any] | None:
        resource = RESOURCES[wait.resource]
        request = resource.request([wait.resource_id])
        response = self.call(Call(resource.service, resource.operation, request), region)
        return dict(resource.records(response)).get(wait.resource_id)

    def drive(self, gen: ActionRun, region: str) -> Mapping[str, Any]:
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                request = gen.throw(error) if error is not None else gen.send(value)
            except StopIteration as stop:
                return stop.value or {}
            value, error = None, None
            try:
                value = self._serve(request, region)
            except (AwsError, WaitFailed, WaitTimeout) as exc:
                error = exc

    def _serve(self, request: Any, region: str) -> Any:
        if isinstance(request, Call):
            return self.call(request, region)
        if isinstance(request, Sleep):
            self.clock.sleep(request.seconds)
            return None
        if isinstance(request, Gate):
            if request.key not in self._open and request.timeout is not None:
                self.clock.sleep(request.timeout)
                return None
            if request.key not in self._open:
                raise WaitFailed(f"gate {request.key} is closed and nothing else runs here")
            return None
        if isinstance(request, Wait):
            deadline = self.clock.now() + request.timeout
            while True:
                record = self.describe(request, region)
                if request.until(record):
                    return record
                reason = request.failed(record)
                if reason:
                    raise WaitFailed(f"{request.what or request.resource}: {reason}")
                if self.clock.now() >= deadline:
                    raise WaitTimeout(f"timed out after {format_duration(request.timeout)} "
                                      f"waiting for {request.what or request.resource}", record)
                self.clock.sleep(self.poll)
        raise TypeError(f"actions may not yield {request!r}")

    def finish_services(self, ctx: StepContext) -> None:
        for service in list(self._services.values()):
            self.drive(service.finish(ctx), ctx.target.region)


def run_action(
    action_name: str,
    target: Target,
    params: Mapping[str, Any],
    runtime: SyncRuntime,
    facts: dict[str, Any] | None = None,
    outputs: Mapping[str, Mapping[str, Any]] | None = None,
    run_id: str = "sync-run",
) -> Mapping[str, Any]:
    """Look up an action, check its params against its schema, run it to the end."""
    from remediate.actions import registry
    from remediate.language.problems import Problems

    action = registry.get(action_name)
    if action is None:
        raise KeyError(action_name)
    problems = Problems()
    checked = action.params.check(dict(params), ("with",), problems)
    if problems:
        raise ValueError("; ".join(p.message for p in problems.items))
    ctx = StepContext(run_id=run_id, target=target, facts=facts or {}, runtime=runtime,
                      outputs=outputs or {})
    return runtime.drive(action.run(ctx, checked), target.region)
