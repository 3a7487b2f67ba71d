"""`remediate run --engine stepfunctions`: the run on AWS Step Functions, followed from here.

Discovery, the pre-flight findings and the question before starting are the
local run's (:func:`remediate.cli.launch.execute` calls in here after them):
refused targets stay refused, ``--accept`` is honoured. The targets that may go
on are leased (``--lock-table``), the state machine is checked against this
playbook and these parameters (and created or updated with ``--role-arn``), then
an execution is started with them: the canary batch alone first when the playbook
pauses after it (then the question, then the other batches in a second
execution), else all batches at once. The executions are followed through their
history (:mod:`remediate.export.follow`), publishing the executor's events to the
same subscribers, so progress, reports and exit codes are a local run's.

Leases name the execution working on their targets and are never given back
while it may still run (:mod:`remediate.cli.execution_leases`): stopped with
Ctrl-C or by an error, the execution goes on in AWS, and other runs keep off its
targets until it ends. The follower's calls retry throttling and transient
errors on the run's clock. What would fail after the pre-flight (targets in
several Regions, more targets than an execution's input holds, an unreachable
``--items-bucket``) is checked before it (:func:`check_before_preflight`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import click

from remediate.actions.contract import Target
from remediate.cli.exitcodes import UserError
from remediate.clock import Clock, VirtualClock
from remediate.executor.events import (
    ApiRetrying,
    Event,
    EventBus,
    Notice,
    RunFinished,
    RunStarted,
    TargetFinished,
    TargetInspected,
)
from remediate.language.model import Playbook

if TYPE_CHECKING:
    from remediate.actions.requests import AwsError
    from remediate.aws.principal import Attacher
    from remediate.aws.retrying import RetryingClient
    from remediate.cli.execution_leases import ExecutionLeases
    from remediate.cli.launch import Environment, RunRequest
    from remediate.executor.leasing import TargetLeases
    from remediate.export.follow import Followed

POLL_SECONDS: Final = 5.0
# With a simulated clock the execution still runs in real time (moto's threads):
# wait this long for real between polls, without moving the clock.
SIMULATED_POLL_SECONDS: Final = 0.05
# The batches of targets, and what following the canary execution found.
Canary = tuple[Sequence[list[Target]], "Followed"]


@dataclass(frozen=True)
class StepFunctionsOptions:
    state_machine: str | None = None  # default: the playbook's name
    role_arn: str | None = None  # create or update the machine with this execution role
    target_role_arn: str | None = None  # every SDK call of the machine assumes this role
    items_bucket: str | None = None  # the batches go to S3 (ItemReader), not in the input


def check_before_preflight(request: RunRequest, options: StepFunctionsOptions,
                           playbook: Playbook, targets: Sequence[Target], factory: Any,
                           run_id: str, clock: Clock) -> Attacher | None:
    """What would stop the run after the pre-flight and the deploy: one line, exit 1.
    Returns the role the machine will attach volumes as (None: no targets), whose KMS key
    access the pre-flight judges (:func:`remediate.cli.state_machine.attacher`)."""
    from remediate.cli.state_machine import attacher
    from remediate.export.run_input import input_problem

    regions = sorted({t.region for t in targets})
    if len(regions) > 1:
        raise UserError(f"a state machine works in one Region; the targets are in "
                        f"{', '.join(regions)}: pass --region")
    if options.items_bucket is None:
        problem = input_problem(playbook, targets, run_id)
        if problem:
            raise UserError(problem)
    else:
        _check_items_bucket(options.items_bucket, factory, regions)
    if not regions:
        return None
    from remediate.aws.retrying import RetryingClient

    sfn = RetryingClient(factory.client("stepfunctions", regions[0]), clock)
    return attacher(request, options, playbook, sfn)


def _check_items_bucket(bucket: str, factory: Any, regions: Sequence[str]) -> None:
    from botocore.exceptions import ClientError

    from remediate.aws.errors import from_exception

    try:
        factory.client("s3", regions[0] if regions else None).head_bucket(Bucket=bucket)
    except ClientError as exc:
        raise UserError(f"--items-bucket {bucket}: "
                        f"{from_exception(exc, 'HeadBucket')}") from None


def pause_for(clock: Clock) -> Callable[[], object]:
    if isinstance(clock, VirtualClock):
        idle = threading.Event()
        return lambda: idle.wait(SIMULATED_POLL_SECONDS)
    return lambda: clock.sleep(POLL_SECONDS)


class _Preflight:
    """Forwards the pre-flight's findings and refusals to the run's subscribers."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    def __call__(self, event: Event) -> None:
        if isinstance(event, TargetInspected | TargetFinished | Notice):
            self.bus.publish(event)


def run_on_stepfunctions(request: RunRequest, env: Environment, playbook: Playbook,
                         params: dict[str, Any], targets: list[Target], factory: Any,
                         run_id: str, said: Mapping[str, str] | None = None) -> int:
    """The run on Step Functions; ``said``: refusals the question before it listed (the
    console does not print them again)."""
    from remediate.cli.execution_leases import ExecutionLeases
    from remediate.cli.launch import exit_code, subscribers
    from remediate.executor.result import RunResult

    options = request.stepfunctions or StepFunctionsOptions()
    bus = subscribers(request.reports, request.progress, request.notify, factory, said=said)
    bus.publish(RunStarted(run_id, playbook.source, False, env.clock.wall(), tuple(targets),
                           tuple(s.id for s in playbook.steps)))
    statuses = _preflight(request, env, playbook, params, targets, factory, bus)
    eligible = [t for t in targets if statuses.get(t.key) == "planned"]
    statuses = {k: v for k, v in statuses.items() if v != "planned"}
    errors: dict[str, str] = {}
    leases = _leases(request, factory, run_id, env.clock)
    flight = ExecutionLeases(leases, bus)
    try:
        if leases is not None and eligible:
            eligible = _lease(leases, run_id, eligible, env, bus, statuses)
        if eligible:
            followed = _start_and_follow(request, options, env, playbook, eligible, factory,
                                         run_id, bus, flight)
            statuses.update(followed.statuses)
            errors.update(followed.errors)
            for target in eligible:
                if target.key not in statuses:
                    reason = f"not started: the execution ended {followed.status}"
                    statuses[target.key], errors[target.key] = "skipped", reason
                    bus.publish(TargetFinished(target, "skipped", reason))
    except BaseException:
        flight.stop()  # Ctrl-C, or an error: the execution may go on in AWS
        raise
    flight.release()
    result = RunResult(run_id, False, statuses, errors)
    bus.publish(RunFinished(run_id, env.clock.wall(), result.summary))
    return exit_code(result)


def _preflight(request: RunRequest, env: Environment, playbook: Playbook,
               params: dict[str, Any], targets: list[Target], factory: Any,
               bus: EventBus) -> dict[str, str]:
    """The local pre-flight (a quiet dry run): each target's status, ``planned`` if it
    may go on."""
    from remediate.cli.launch import lookup
    from remediate.executor.engine import Executor
    from remediate.journal import Journal

    quiet = EventBus()
    quiet.subscribe(_Preflight(bus))
    result = Executor(playbook, targets, clients=lookup(factory), clock=env.clock, bus=quiet,
                      journal=Journal.memory(), run_id="preflight", params=params,
                      accepted=request.accepted, dry_run=True,
                      concurrency=request.concurrency, rate_limits=request.rate_limits,
                      attacher=request.attacher).run()
    return dict(result.statuses)


def _leases(request: RunRequest, factory: Any, run_id: str, clock: Clock) -> TargetLeases | None:
    from remediate.cli.lock_table import open_leases

    return open_leases(request.lock_table, factory, run_id, clock)


def _lease(leases: TargetLeases, run_id: str, eligible: list[Target], env: Environment,
           bus: EventBus, statuses: dict[str, str]) -> list[Target]:
    outcome = leases.lock(run_id, eligible, env.clock.wall().isoformat())
    for key, holder in outcome.taken_over.items():
        bus.publish(Notice("warning", f"{key}: took over an expired lease of run "
                                      f"{holder.run_id} in lock table {leases.name}"))
    for target in eligible:
        held = outcome.refused.get(target.key)
        if held is not None:
            reason = f"{target.key} is {held.describe()} (lock table {leases.name})"
            statuses[target.key] = "refused"
            bus.publish(TargetFinished(target, "refused", reason))
    return [t for t in eligible if t.key not in outcome.refused]


def _retrying(client: Any, clock: Clock, bus: EventBus) -> RetryingClient:
    """``client``'s calls retried on throttling and transient errors, each retry an event
    (the progress display counts them)."""
    from remediate.aws.retrying import RetryingClient

    def said(error: AwsError, attempts: int, delay: float) -> None:
        bus.publish(ApiRetrying(f"states:{error.operation}", error.code, attempts, delay))

    return RetryingClient(client, clock, on_retry=said)


def _start_and_follow(request: RunRequest, options: StepFunctionsOptions, env: Environment,
                      playbook: Playbook, eligible: list[Target], factory: Any, run_id: str,
                      bus: EventBus, flight: ExecutionLeases) -> Followed:
    from remediate.cli.export import compile_or_fail
    from remediate.cli.state_machine import state_machine
    from remediate.export import execution_input, execution_name
    from remediate.export.run_input import cut_batches, execution_arn

    compiled = compile_or_fail(request.playbook_path, request.params, request.accepted,
                               options.target_role_arn, options.items_bucket)
    region = eligible[0].region
    sfn = _retrying(factory.client("stepfunctions", region), env.clock, bus)
    machine = state_machine(request, options, playbook, compiled.definition, sfn)
    items = cut_batches(playbook, eligible)
    keys = _write_items(options, factory, region, run_id, items, env.clock, bus)
    by_item = {(t.account, t.region, t.id): t for t in eligible}
    batches = [[by_item[(i["account"], i["region"], i["id"])] for i in batch] for batch in items]
    pause = not request.yes and playbook.guards.pause_after_canary and len(batches) > 1
    parts = [slice(0, 1), slice(1, None)] if pause else [slice(None)]
    followed: Followed | None = None
    for number, part in enumerate(parts):
        name = execution_name(run_id if number == 0 else f"{run_id}-rest")
        started = [t for batch in batches[part] for t in batch]
        flight.starting(started, execution_arn(machine, name))  # its leases name it first
        document = execution_input(playbook, eligible, run_id, part, item_keys=keys)
        arn = _start(sfn, machine, name, document)
        click.echo(f"run {run_id}: execution {arn}", err=True)
        followed = _follow(sfn, arn, bus, env.clock, batches, part, flight.renew, followed)
        flight.ended(started)
        ask = flight.leases.renewing(_go_on) if flight.leases is not None else _go_on
        if number == 0 and pause and not _asked(bus, ask, (batches, followed),
                                                playbook.guards.max_failure_percent):
            _not_confirmed([t for b in batches[1:] for t in b], followed, bus)
            break
        if followed.status != "SUCCEEDED":
            break
    assert followed is not None
    if followed.status != "SUCCEEDED":
        bus.publish(Notice("error", f"the execution ended {followed.status}: "
                                    f"{followed.error}: {followed.cause}"))
    return followed


def _write_items(options: StepFunctionsOptions, factory: Any, region: str, run_id: str,
                 items: list[list[dict[str, str]]], clock: Clock,
                 bus: EventBus) -> list[str] | None:
    """With --items-bucket: the batches written to S3, their keys (None: in the input)."""
    if options.items_bucket is None:
        return None
    from remediate.export.items import PREFIX, write_items
    from remediate.reporters.wording import plural

    s3 = _retrying(factory.client("s3", region), clock, bus)
    keys = write_items(s3, options.items_bucket, run_id, items)
    click.echo(f"run {run_id}: {plural(len(keys), 'batch', 'batches')} of targets in "
               f"s3://{options.items_bucket}/{PREFIX}/{run_id}/", err=True)
    return keys


def _start(sfn: Any, machine: str, name: str, document: Mapping[str, Any]) -> str:
    import json

    started = sfn.start_execution(stateMachineArn=machine, name=name,
                                  input=json.dumps(document, separators=(",", ":")))
    return str(started["executionArn"])


def _follow(sfn: Any, arn: str, bus: EventBus, clock: Clock, batches: Sequence[list[Target]],
            part: slice, tick: Callable[[], object] | None,
            before: Followed | None) -> Followed:
    from remediate.export.follow import ExecutionFollower

    first = part.start or 0
    follower = ExecutionFollower(sfn, bus, clock, batches[part], first=first,
                                 total=len(batches), pause=pause_for(clock),
                                 tick=tick)
    try:
        followed = follower.follow(arn)
    except BaseException:  # Ctrl-C, or AWS's errors once retries are spent
        click.echo(f"stopped following; the execution goes on in AWS: {arn} (stop it with "
                   "`aws stepfunctions stop-execution`)", err=True)
        raise
    if before is not None:
        followed.statuses = {**before.statuses, **followed.statuses}
        followed.errors = {**before.errors, **followed.errors}
    return followed


def _not_confirmed(rest: list[Target], followed: Followed, bus: EventBus) -> None:
    from remediate.reporters.wording import plural

    reason = "not confirmed after the canary batch"
    bus.publish(Notice("warning", f"{reason}: {plural(len(rest), 'target')} skipped"))
    for target in rest:
        followed.statuses[target.key], followed.errors[target.key] = "skipped", reason
        bus.publish(TargetFinished(target, "skipped", reason))


def _asked(bus: EventBus, ask: Callable[[Canary], bool], canary: Canary,
           max_failure_percent: float) -> bool:
    """The question after the canary execution, between the events a local run publishes
    around it (the progress display stops repainting and says how the canary fared)."""
    from remediate.executor.events import CanaryAnswered, CanaryQuestion
    from remediate.executor.guards import FAILED

    batches, followed = canary
    statuses = tuple(sorted((t.key, followed.statuses.get(t.key, "interrupted"))
                            for t in batches[0]))
    total = sum(len(b) for b in batches)
    bus.publish(CanaryQuestion(statuses, total - len(batches[0]),
                               sum(1 for _, s in statuses if s in FAILED),
                               int(total * max_failure_percent / 100.0)))
    go_on = False
    try:
        go_on = ask(canary)
    finally:
        bus.publish(CanaryAnswered(go_on))
    return go_on


def _go_on(canary: Canary) -> bool:
    from remediate.cli.launch import _canary_prompt
    from remediate.executor.guards import BatchResult

    batches, followed = canary
    statuses = {t.key: followed.statuses.get(t.key, "interrupted") for t in batches[0]}
    remaining = sum(len(b) for b in batches[1:])
    return _canary_prompt(BatchResult(0, statuses, remaining))
