"""One step on one target: ``when``, params, attempts with backoff, timeout, journal, events.

The action's generator is driven here rather than with ``yield from``: the
executor's own interruptions (the step's timeout, a second Ctrl-C) arrive as
:class:`~remediate.executor.scheduler.Cancelled` at this level and close the
action's generator, so an action that catches every exception still cannot
swallow its timeout.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from remediate.actions import registry
from remediate.actions.contract import Action, StepContext, Target
from remediate.actions.requests import ActionRun, AwsError, OutcomeUnknown, Sleep, StepFailed
from remediate.aws.retry import backoff, delay_for
from remediate.executor.context import RunContext
from remediate.executor.events import (
    StepFinished,
    StepReconciling,
    StepRetrying,
    StepStarted,
    StepStatus,
)
from remediate.executor.scheduler import Abandoned, Cancelled, Expired, Task
from remediate.language.model import Step
from remediate.language.problems import Problems, render_path
from remediate.language.template import TemplateError, render

Steps = Generator[Any, Any, Any]
# A step whose call had an unknown outcome is run again from its start (it reads AWS's
# state first) after this many seconds, at most this many times per attempt.
RECONCILE_DELAY = 5.0
RECONCILE_LIMIT = 5


@dataclass
class TargetState:
    """A target's progress: facts, and each step's status and outputs so far."""

    target: Target
    facts: dict[str, Any] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    task: Task | None = None
    # What it is doing, for the "still in flight" list of a second Ctrl-C.
    doing: str = ""
    # Dry runs: API -> the permission check's request its planned call gave, if any.
    probes: dict[str, Mapping[str, Any]] = field(default_factory=dict)

    def scope(self, rc: RunContext) -> dict[str, Any]:
        return {
            "params": dict(rc.params),
            "target": self.facts,
            "steps": {sid: {"status": status, "outputs": self.outputs.get(sid, {})}
                      for sid, status in self.statuses.items()},
            "run": {"id": rc.run_id},
        }

    def context(self, rc: RunContext, step_id: str, params: Mapping[str, Any]) -> StepContext:
        return StepContext(run_id=rc.run_id, target=self.target, facts=dict(self.facts),
                           runtime=rc.runtime(self.target), outputs=dict(self.outputs),
                           params=params, dry_run=rc.dry_run, step_id=step_id,
                           base_dir=rc.base_dir, accepted=rc.accepted,
                           sent_before=lambda operation: rc.journal.step_sent(
                               rc.run_id, self.target.key, step_id, operation))


@dataclass(frozen=True)
class StepOutcome:
    status: StepStatus
    attempts: int
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    refused: str | None = None  # not run: it needs an --accept the run lacks
    # Failed, and not retried only because the run is stopping: no failure of the target.
    cut_short: bool = False


def drive(rc: RunContext, task: Task, gen: ActionRun, timeout: float | None,
          deadline: float | None = None) -> Steps:
    """Run an action's generator to its end; its outputs, or its exception. It expires
    ``timeout`` seconds from now, or at ``deadline`` on the run's clock if given."""
    timer = None
    if timeout is not None:
        expires = rc.clock.now() + timeout if deadline is None else deadline
        timer = rc.scheduler.at(expires,
                                lambda: rc.scheduler.interrupt(task, Expired(timeout)),
                                guard=True)
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                request = gen.throw(error) if error is not None else gen.send(value)
            except StopIteration as stop:
                return dict(stop.value or {})
            value, error = None, None
            try:
                value = yield request
            except Cancelled:
                _close(gen)
                raise
            except Exception as exc:  # AWS errors, wait failures: the action's to handle
                error = exc
    finally:
        if timer is not None:
            timer.cancel()


def _close(gen: ActionRun) -> None:
    # RuntimeError: the action yielded from a finally block; there is nothing more to do.
    with contextlib.suppress(RuntimeError):
        gen.close()


def failure_text(action: str, exc: BaseException) -> tuple[str, bool]:
    """The error a human reads, and whether another attempt could help."""
    if isinstance(exc, StepFailed | AwsError | Expired | OutcomeUnknown):
        return str(exc), True
    return f"internal error in action {action}: {type(exc).__name__}: {exc}", False


def prepare(rc: RunContext, state: TargetState, step: Step, path: tuple[str | int, ...],
            action: Action) -> tuple[dict[str, Any] | None, str | None]:
    """The step's params rendered and checked against the action's schema, or an error."""
    try:
        rendered = render(dict(step.params), state.scope(rc))
    except TemplateError as exc:
        return None, f"with: {exc}"
    problems = Problems()
    checked = action.params.check(rendered, (*path, "with"), problems)
    if problems:
        return None, "; ".join(f"{render_path(p.path)}: {p.message}" for p in problems.items)
    return checked, None


def _attempt(rc: RunContext, state: TargetState, step: Step, action: Action,
             params: Mapping[str, Any], attempt: int, rollback: bool) -> Steps:
    """One attempt at ``step``: the action run to its end, and run again from its start
    (reconciled) each time one of its calls had an unknown outcome, up to
    :data:`RECONCILE_LIMIT` times; the step's timeout covers them all."""
    task = state.task
    assert task is not None
    timeout = rc.default_timeout(step.timeout)
    deadline = rc.clock.now() + timeout
    reconciled = 0
    while True:
        gen = action.run(state.context(rc, step.id, params), params)
        try:
            return (yield from drive(rc, task, gen, timeout, deadline))
        except OutcomeUnknown as unknown:
            reconciled += 1
            stopping = rc.stop_level >= (2 if rollback else 1)
            if stopping:
                raise StepFailed(f"{unknown}; not reconciled: the run is stopping") \
                    from unknown
            if reconciled > RECONCILE_LIMIT:
                raise StepFailed(f"{unknown}; AWS's state did not settle it after "
                                 f"{reconciled - 1} reconciliations") from unknown
            delay = RECONCILE_DELAY
            rc.bus.publish(StepReconciling(state.target, step.id, attempt, unknown.operation,
                                           delay))
            # Let what the lost call did become visible (AWS is eventually consistent).
            yield Sleep(delay)


def run_step(rc: RunContext, state: TargetState, step: Step, path: tuple[str | int, ...],
             rollback: bool = False, attempts_before: int = 0) -> Steps:
    """Run ``step`` on the target; returns a :class:`StepOutcome` (Abandoned propagates)."""
    target, task = state.target, state.task
    assert task is not None
    task.caller.step_id, task.caller.rollback = step.id, rollback
    started = rc.now()

    def finish(status: StepStatus, attempts: int, outputs: dict[str, Any] | None = None,
               error: str | None = None) -> StepOutcome:
        at = rc.now()
        rc.journal.step_finished(rc.run_id, target, step.id, rollback, status=status,
                                 attempts=attempts, at=at, outputs=outputs, error=error)
        rc.bus.publish(StepFinished(target, step.id, step.action, status, attempts, started,
                                    at, error, dict(outputs or {}), rollback))
        state.statuses[step.id] = status
        state.outputs[step.id] = dict(outputs or {})
        return StepOutcome(status, attempts, dict(outputs or {}), error)

    if step.when is not None and not step.when.evaluate(state.scope(rc)):
        return finish("skipped", 0)
    action = registry.get(step.action)
    if action is None:
        return finish("failed", 0, error=f"unknown action {step.action!r}")
    refusal = rc.policy.step_refusal(action)
    if refusal is not None:
        outcome = finish("skipped", 0, error=refusal)
        return replace(outcome, refused=refusal)
    params, problem = prepare(rc, state, step, path, action)
    if params is None:
        return finish("failed", 0, error=problem)
    retries = step.retries
    wait = backoff(retries.initial_delay, retries.multiplier, retries.max_delay, retries.jitter)
    attempt = attempts_before
    while True:
        attempt += 1
        at = rc.now()
        rc.journal.step_started(rc.run_id, target, step.id, rollback, attempt, at)
        rc.bus.publish(StepStarted(target, step.id, step.action, attempt, at))
        state.doing = f"{'rollback ' if rollback else ''}step {step.id} ({step.action})"
        try:
            outputs = yield from _attempt(rc, state, step, action, params, attempt, rollback)
        except Abandoned:
            raise
        except Exception as exc:
            error, retryable = failure_text(step.action, exc)
            # Its reconciliation was cut off (see _attempt): the outcome is unknown.
            unsettled = isinstance(exc.__cause__, OutcomeUnknown)
        else:
            return finish("succeeded", attempt, outputs)
        stopping = rc.stop_level >= (2 if rollback else 1)
        if not retryable or attempt - attempts_before >= retries.attempts or stopping:
            if stopping and retryable and attempt - attempts_before < retries.attempts:
                error += " (not retried: the run is stopping)"
                return replace(finish("failed", attempt, error=error), cut_short=True)
            # Not reconciled because the run is stopping: no failure of the target either.
            return replace(finish("failed", attempt, error=error),
                           cut_short=stopping and unsettled)
        delay = delay_for(wait, attempt - attempts_before)
        rc.bus.publish(StepRetrying(target, step.id, attempt, delay, error))
        yield Sleep(delay)
