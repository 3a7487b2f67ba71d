"""One run (or dry run) of a playbook from the command line: every piece wired together.

load the playbook -> bind parameters -> AWS clients -> discover targets -> (ask) ->
the executor with its subscribers (terminal, reports, SNS) -> an exit code. The
demo uses the same path with the sandbox's session and clock.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from remediate.aws.apis import Bucket
from remediate.cli import exitcodes
from remediate.cli.audit_text import audit_text, preflight_text
from remediate.cli.exitcodes import UserError
from remediate.cli.options import (
    DEFAULT_JOURNAL,
    ExecutionArgs,
    TargetArgs,
    new_run_id,
    parse_params,
    parse_rate_limits,
    split_ids,
)
from remediate.cli.playbook_arg import load_or_fail
from remediate.clock import Clock, RealClock
from remediate.language.loader import bind_params
from remediate.language.model import Account, Playbook

if TYPE_CHECKING:
    from remediate.aws.principal import Attacher
    from remediate.cli.stepfunctions_run import StepFunctionsOptions
    from remediate.discovery import Overrides
    from remediate.executor.alarm_watch import AlarmWatch
    from remediate.executor.engine import Executor
    from remediate.executor.result import RunResult


@dataclass
class Environment:
    """Where AWS is: the real one (defaults) or the sandbox (demo, tests)."""

    clock: Clock = field(default_factory=RealClock)
    session: Any = None  # a boto3 Session replacing the default credentials chain
    endpoint_url: str | None = None
    interactive: bool = True  # may ask questions on the terminal

    def scaled(self, factor: float | None) -> Environment:
        """With the hidden ``--clock-factor F``: the tool waits F times faster, for
        rehearsals against `remediate sandbox serve --clock-factor F`."""
        if not factor:
            return self
        from remediate.clock import ScaledClock

        return replace(self, clock=ScaledClock(factor))


@dataclass
class RunRequest:
    playbook_path: str
    targets: TargetArgs = field(default_factory=TargetArgs)
    params: Mapping[str, str] = field(default_factory=dict)
    accepted: frozenset[str] = frozenset()
    concurrency: int | None = None
    rate_limits: Mapping[str, Bucket] = field(default_factory=dict)
    reports: tuple[str, ...] = ()
    journal_path: str = DEFAULT_JOURNAL
    progress: bool | None = None
    yes: bool = False
    dry_run: bool = False
    notify: str | None = None
    plan_format: str = "text"
    lock_table: str | None = None  # a shared DynamoDB lease table, besides the journal
    stepfunctions: StepFunctionsOptions | None = None  # run on AWS Step Functions instead
    clock_factor: float | None = None  # hidden --clock-factor (sandbox rehearsals)
    plan_out: str | None = None  # plan --out: save the approved plan there
    plan_path: str | None = None  # run --plan: apply that approved plan (playbook_path: "")
    retry_failed: str | None = None  # run --retry-failed: a report, journal or run id
    # Set from --plan's file: the facts it pinned, by target key (remediate.plans.drift).
    approved: Mapping[str, Mapping[str, Any]] | None = None
    stop_on_alarm: tuple[str, ...] = ()  # CloudWatch alarms that stop starting targets
    # plan: forecast by rehearsing the run (remediate.forecast); None: if the fleet is
    # small enough (REHEARSAL_AUTO_LIMIT)
    rehearsal: bool | None = False
    # The role that will call AttachVolume (Step Functions: the machine's), whose KMS key
    # access the pre-flight judges; None: the operator.
    attacher: Attacher | None = None

    @classmethod
    def from_args(cls, playbook_path: str, targets: TargetArgs, execution: ExecutionArgs,
                  **extra: Any) -> RunRequest:
        return cls(playbook_path, targets, parse_params(execution.params),
                   frozenset(execution.accepted), execution.concurrency,
                   parse_rate_limits(execution.rate_limits), execution.reports,
                   execution.journal_path, execution.progress,
                   clock_factor=execution.clock_factor, **extra)


def accounts_of(playbook: Playbook, profile: str | None) -> tuple[Account, ...]:
    """The accounts the playbook names, else ``--profile``'s (none: the default
    credentials)."""
    if playbook.targets.accounts:
        return playbook.targets.accounts
    return (Account("default", profile=profile),) if profile else ()


def bound_params(playbook: Playbook, overrides: Mapping[str, str]) -> dict[str, Any]:
    """The playbook's parameters with ``--param`` values bound; UserError if one is bad."""
    values, errors = bind_params(playbook, overrides)
    if errors:
        raise UserError("; ".join(errors))
    return values


def target_overrides(targets: TargetArgs, ids: tuple[str, ...] | None = None,
                     regions: tuple[str, ...] = ()) -> Overrides:
    """The command line's selectors (--target-ids, --tag, --filter, --region, --limit);
    ``ids`` replace --target-ids and ``regions`` are used when --region is not given
    (``--retry-failed``: the targets and Regions that failed)."""
    from remediate.discovery import Overrides, parse_pairs

    return Overrides(
        target_ids=ids if ids is not None else split_ids(targets.target_ids),
        tags=parse_pairs(targets.tags, "--tag", split=False),
        filters=parse_pairs(targets.filters, "--filter", split=True),
        regions=split_ids(targets.regions, "--region") or regions, limit=targets.limit)


def execute(request: RunRequest, env: Environment | None = None) -> int:
    env = (env or Environment()).scaled(request.clock_factor)
    from remediate.aws.clients import ClientFactory
    from remediate.cli import plan_apply
    from remediate.discovery import discover

    plan = None
    if request.plan_path is not None:
        plan_apply.refuse_changes_to_plan(request.plan_path, request.targets, request.params,
                                          request.accepted)
        plan, playbook = plan_apply.approved_plan(request.plan_path,
                                                  request.playbook_path or None)
        params = dict(plan.params)
        request = replace(request, accepted=plan.accepted, targets=replace(
            request.targets, profile=request.targets.profile or plan.profile))
    else:
        playbook = load_or_fail(request.playbook_path)
        params = bound_params(playbook, request.params)
    retry = None if request.retry_failed is None else plan_apply.retry_set(
        request.retry_failed, request.journal_path, playbook, request.targets)
    from remediate.notify import check_topic, parse_notify, topic_region

    # A typo fails before anything runs.
    topic_arn = parse_notify(request.notify) if request.notify else None
    from remediate.destinations import check_destination
    from remediate.reporters import checked_specs

    # So does a typo in --report, or a report or journal that cannot be written (not
    # after the prompt, or the run).
    journaled = not request.dry_run and request.stepfunctions is None
    checked_specs(request.reports, request.journal_path if journaled else None)
    if journaled:
        check_destination(request.journal_path, f"--journal {request.journal_path}")
    if request.plan_out:
        plan_apply.check_plan_out(request.plan_out, request.reports)
    run_id = new_run_id()
    factory = ClientFactory(accounts_of(playbook, request.targets.profile), run_id=run_id,
                            session=env.session, endpoint_url=env.endpoint_url,
                            dry_run=request.dry_run)
    if topic_arn:  # a topic that does not exist fails before the first target is found
        check_topic(factory.client("sns", topic_region(topic_arn)), topic_arn)
    overrides = target_overrides(request.targets, *((retry.ids, retry.regions) if retry
                                                    else ()))
    if plan is not None:  # exactly the approved targets: no discovery
        targets, approved = plan_apply.plan_targets(plan, str(request.plan_path))
        request = replace(request, approved=approved)
    else:
        notices: list[str] = []
        targets = discover(playbook.targets, factory, overrides, clock=env.clock,
                           warn=notices.append)
        for notice in notices:
            click.echo(f"warning: {notice}", err=True)
        if retry is not None:
            targets = plan_apply.retried_only(retry, targets)
    guards = playbook.guards
    if guards.max_targets is not None and len(targets) > guards.max_targets:
        raise UserError(f"{len(targets)} targets selected, but {playbook.source} allows at most "
                        f"{guards.max_targets} (guards.max_targets): narrow the selection "
                        "with --tag, --filter, --target-ids or --limit")
    from remediate.cli.alarms import watch_alarms

    alarms = watch_alarms(request.stop_on_alarm, targets, factory, env.clock,
                          engine="local" if request.stepfunctions is None else "stepfunctions")
    if request.dry_run:
        return _plan(request, env, playbook, params, targets, factory, run_id, overrides)
    if request.stepfunctions is not None:
        from remediate.cli.stepfunctions_run import check_before_preflight

        request = replace(request, attacher=check_before_preflight(
            request, request.stepfunctions, playbook, targets, factory, run_id, env.clock))
    said = {} if request.yes else _ask_first(request, env, playbook, params, targets, factory)
    if request.stepfunctions is not None:
        from remediate.cli.stepfunctions_run import run_on_stepfunctions

        return run_on_stepfunctions(request, env, playbook, params, targets, factory, run_id,
                                    said)
    return _run(request, env, playbook, params, targets, factory, run_id, alarms, said)


def lookup(factory: Any) -> Callable[[str, str, str], Any]:
    return lambda account, region, service: factory.client(service, region, account)


REHEARSAL_AUTO_LIMIT = 500
"""Targets a dry run rehearses unless told: a rehearsal costs about a quarter of a second
of this machine per target (205 took 52 s on a busy 2-core machine), which an on-call
engineer should not wait for unasked at fleet size."""


def rehearse(asked: bool | None, targets: int) -> bool:
    """Whether a dry run of ``targets`` rehearses the run (``asked``: --rehearsal or
    --no-rehearsal; None: up to :data:`REHEARSAL_AUTO_LIMIT`, saying so above it)."""
    if asked is not None:
        return asked
    if targets > REHEARSAL_AUTO_LIMIT:
        click.echo(f"note: {targets} targets: the estimate is from the API rates alone; a "
                   f"rehearsal of more than {REHEARSAL_AUTO_LIMIT} takes minutes (--rehearsal "
                   "forecasts by one anyway)", err=True)
        return False
    return True


def _plan(request: RunRequest, env: Environment, playbook: Playbook, params: dict[str, Any],
          targets: list[Any], factory: Any, run_id: str, overrides: Any) -> int:
    from remediate.executor.engine import Executor
    from remediate.executor.events import EventBus
    from remediate.forecast.child import forecast
    from remediate.journal import Journal
    from remediate.reporters import from_specs
    from remediate.reporters.json_report import JsonReport
    from remediate.reporters.markdown import MarkdownReport

    bus = EventBus()
    record = from_specs(request.reports)
    bus.subscribe(record)
    executor = Executor(playbook, targets, clients=lookup(factory), clock=env.clock, bus=bus,
                        journal=Journal.memory(), run_id=run_id, params=params,
                        accepted=request.accepted, dry_run=True,
                        concurrency=request.concurrency, rate_limits=request.rate_limits,
                        approved=request.approved,
                        forecaster=forecast if rehearse(request.rehearsal, len(targets)) else None)
    result = executor.run()
    record.close()
    if request.plan_out:
        from remediate.cli.plan_apply import save_plan

        save_plan(request.plan_out, record, playbook, params, request.accepted,
                  request.targets, overrides)
    if request.plan_format == "json":
        JsonReport("-")(record)
    elif request.plan_format == "md":
        MarkdownReport("-")(record)
    else:
        click.echo(audit_text(record))
    if result.refused_mutations:
        raise RuntimeError(f"the dry run tried {result.refused_mutations} mutating call(s); "
                           "they were refused (a bug in an action)")
    refused = [s for s in result.statuses.values() if s in ("refused", "failed")]
    return exitcodes.TARGETS_FAILED if refused or result.denied else exitcodes.OK


def _ask_first(request: RunRequest, env: Environment, playbook: Playbook,
               params: dict[str, Any], targets: list[Any], factory: Any) -> dict[str, str]:
    """Show what the run is about to do (a quiet dry run) and ask, like `terraform apply`.
    Returns the refusals it showed (target key -> why): the run does not print them again."""
    if not env.interactive or not sys.stdin.isatty():
        raise UserError("refusing to change anything without confirmation: stdin is not a "
                        "terminal; review `remediate plan` and pass --yes")
    from remediate.executor.engine import Executor
    from remediate.executor.events import EventBus
    from remediate.journal import Journal
    from remediate.reporters.record import RunRecord

    bus = EventBus()
    record = RunRecord()
    bus.subscribe(record)
    Executor(playbook, targets, clients=lookup(factory), clock=env.clock, bus=bus,
             journal=Journal.memory(), run_id="preflight", params=params,
             accepted=request.accepted, dry_run=True, concurrency=request.concurrency,
             rate_limits=request.rate_limits, approved=request.approved,
             attacher=request.attacher).run()
    record.close()
    click.echo(preflight_text(record), err=True)
    if not click.confirm("Go ahead?", default=False, err=True):
        raise UserError("not confirmed: nothing was changed")
    return {key: r.refused for key, r in record.targets.items()
            if r.status == "refused" and r.refused}


@contextmanager
def ctrl_c(executor: Executor) -> Iterator[None]:
    """First Ctrl-C: finish what is in flight, start nothing new. Second: stop waiting.
    Third: the default handler (exit at once; `remediate resume` picks up)."""
    count = 0

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal count
        count += 1
        executor.request_stop()
        if count >= 3:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _run(request: RunRequest, env: Environment, playbook: Playbook, params: dict[str, Any],
         targets: list[Any], factory: Any, run_id: str, alarms: AlarmWatch | None = None,
         said: Mapping[str, str] | None = None) -> int:
    from remediate.cli.lock_table import open_leases
    from remediate.executor.engine import Executor
    from remediate.journal import Journal

    journal = Journal(_journal_path(request.journal_path))
    bus = subscribers(request.reports, request.progress, request.notify, factory,
                      topic_checked=True, journal=request.journal_path, said=said)
    confirm = None if request.yes or not playbook.guards.pause_after_canary else _canary_prompt
    executor = Executor(playbook, targets, clients=lookup(factory), clock=env.clock, bus=bus,
                        journal=journal, run_id=run_id, params=params,
                        accepted=request.accepted, concurrency=request.concurrency,
                        rate_limits=request.rate_limits, confirm=confirm,
                        leases=open_leases(request.lock_table, factory, run_id, env.clock),
                        approved=request.approved, alarms=alarms)
    click.echo(f"run {run_id}: journal {request.journal_path} "
               f"(`remediate resume {request.journal_path}` continues it)", err=True)
    with ctrl_c(executor):
        result = executor.run()
    return exit_code(result)


def _journal_path(path: str) -> str:
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    return path


def subscribers(reports: tuple[str, ...], progress: bool | None, notify: str | None,
                factory: Any, *, topic_checked: bool = False,
                journal: str | None = None, said: Mapping[str, str] | None = None) -> Any:
    """The run's event bus: the terminal (which does not repeat the refusals ``said``
    before the run), the reports (none on the run's ``journal``), and ``--notify``'s SNS
    topic (checked with GetTopicAttributes first, unless ``topic_checked``)."""
    from remediate.executor.events import EventBus
    from remediate.reporters import from_specs
    from remediate.reporters.terminal import TerminalReporter

    bus = EventBus()
    bus.subscribe(TerminalReporter(progress=progress, said=said))
    bus.subscribe(from_specs(reports, journal))
    if notify:
        from remediate.notify import sns_notifier

        bus.subscribe(sns_notifier(notify, lambda region: factory.client("sns", region),
                                   _warn, check=not topic_checked))
    return bus


def _warn(text: str) -> None:
    click.echo(f"warning: {text}", err=True)


def _canary_prompt(batch: Any) -> bool:
    """The question after the canary batch. How the canary fared is said by the terminal
    reporter (on ``CanaryQuestion``, which also stops its bars repainting over this)."""
    if not sys.stdin.isatty():
        return True
    return click.confirm("Go on with the remaining targets?", default=False, err=True)


def exit_code(result: RunResult) -> int:
    if result.interrupted:
        return exitcodes.INTERRUPTED
    if not result.ok or any(s == "refused" for s in result.statuses.values()):
        return exitcodes.TARGETS_FAILED
    return exitcodes.OK
