"""One step on one target: ``when``, params, attempts with backoff, timeout, journal, events.

The action's generator is driven here rather than with ``yield from``: the
executor's own interruptions (the step's timeout, a second Ctrl-C) arrive as
:class:`~remediate.executor.scheduler.Cancelled` at this level and close the
action's generator, so an action that catches every exception still cannot
swallow its timeout.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from remediate.actions import registry
from remediate.actions.contract import Action, StepContext, Target
from remediate.actions.requests import (
    UNTOUCHED,
    ActionRun,
    AwsError,
    OutcomeUnknown,
    Sleep,
    StepFailed,
)
from remediate.aws.retry import Backoff
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
UNTOUCHED_OUTPUT = "untouched"
"""The output a failed step of kind UNTOUCHED is journaled with."""
FAILURE_OUTPUT = "failure"
"""The output a failed step of any other kind is journaled with: its kind, which the
rollback it starts reads at ``run.failure``, also after a resume."""


def failure_outputs(kind: str | None) -> dict[str, Any] | None:
    """What a step that failed with ``kind`` is journaled with, so a resumed run knows it."""
    if kind is None:
        return None
    return {UNTOUCHED_OUTPUT: True} if kind == UNTOUCHED else {FAILURE_OUTPUT: kind}


def failure_kind(outputs: dict[str, Any]) -> str | None:
    """The kind a failed step was journaled with by :func:`failure_outputs`."""
    if outputs.get(UNTOUCHED_OUTPUT):
        return UNTOUCHED
    kind = outputs.get(FAILURE_OUTPUT)
    return kind if isinstance(kind, str) else None


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

    def context(self, rc: RunContext, step_id: str, params: Mapping[str, Any],
                continuing: bool = False, failure: str | None = None) -> StepContext:
        key = self.target.key
        return StepContext(run_id=rc.run_id, target=self.target, facts=dict(self.facts),
                           runtime=rc.runtime(self.target), outputs=dict(self.outputs),
                           params=params, dry_run=rc.dry_run, step_id=step_id,
                           base_dir=rc.base_dir, accepted=rc.accepted,
                           sent_before=lambda operation: rc.journal.step_sent(
                               rc.run_id, key, step_id, operation),
                           sent_in_run=lambda operation: rc.journal.step_sent(
                               rc.run_id, key, step_id, operation, any_pass=True),
                           unanswered_before=lambda operation: rc.journal.step_unanswered(
                               rc.run_id, key, step_id, operation),
                           answered_before=lambda operation: rc.journal.step_answers(
                               rc.run_id, key, step_id, operation),
                           continuing=continuing, failure=failure)


class Unsettled(Exception):
    """A step's call had an unknown outcome and AWS's state did not settle it: still
    unknown after :data:`RECONCILE_LIMIT` reconciliations (AWS kept failing), or the run
    was stopping. Not a failure of the target: it ends ``interrupted`` (rolled back first
    if it got past a mutation), off the failure budget, for ``resume``."""

    def __init__(self, unknown: OutcomeUnknown, why: str) -> None:
        super().__init__(f"{unknown}; {why}")
        self.unknown = unknown


@dataclass(frozen=True)
class StepOutcome:
    status: StepStatus
    attempts: int
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    refused: str | None = None  # not run: it needs an --accept the run lacks
    # Failed, and not retried only because the run is stopping: no failure of the target.
    cut_short: bool = False
    unsettled: bool = False  # an unknown outcome left unsettled (see Unsettled)
    # Failed: its last attempt's StepFailed.kind (None: another error).
    kind: str | None = None

    @property
    def untouched(self) -> bool:
        """Failed, and declared it left the target as it found it (UNTOUCHED)."""
        return self.status == "failed" and self.kind == UNTOUCHED


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
    if isinstance(exc, Unsettled):
        return str(exc), False
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


def reconciling(rc: RunContext, state: TargetState, step_id: str,
                start: Callable[[bool], ActionRun], *, attempt: int, timeout: float | None,
                continuing: bool = False, stop_level: int | None = None) -> Steps:
    """``start(continuing)``'s generator run to its end, and run again from its start
    (reconciled: it reads AWS's state first) each time one of its calls had an unknown
    outcome, up to :data:`RECONCILE_LIMIT` times, then :class:`Unsettled`; also once the
    run's stop level reaches ``stop_level``. ``timeout`` covers them all. For steps and
    for run services' ``finish`` alike: neither resends what is not safe to repeat."""
    task = state.task
    assert task is not None
    deadline = None if timeout is None else rc.clock.now() + timeout
    reconciled = 0
    while True:
        gen = start(continuing or reconciled > 0)
        try:
            return (yield from drive(rc, task, gen, timeout, deadline))
        except OutcomeUnknown as unknown:
            reconciled += 1
            if reconciled > RECONCILE_LIMIT:
                raise Unsettled(unknown, f"AWS's state did not settle it after "
                                         f"{RECONCILE_LIMIT} reconciliations") from unknown
            if stop_level is not None and rc.stop_level >= stop_level:
                raise Unsettled(unknown, "not reconciled: the run is stopping") from unknown
            delay = RECONCILE_DELAY
            rc.bus.publish(StepReconciling(state.target, step_id, attempt, unknown.operation,
                                           delay))
            # Let what the lost call did become visible (AWS is eventually consistent).
            yield Sleep(delay)


def run_step(rc: RunContext, state: TargetState, step: Step, path: tuple[str | int, ...],
             rollback: bool = False, attempts_before: int = 0,
             failure: str | None = None) -> Steps:
    """Run ``step`` on the target; returns a :class:`StepOutcome` (Abandoned propagates).
    ``failure``: in a rollback, the kind of the failure that started it (``run.failure``).
    A failure's kind is journaled with it (:func:`failure_outputs`), so a resumed run
    knows it too: an UNTOUCHED one ends the target refused, another reaches the rollback."""
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

    def unsettled(attempts: int, error: str) -> StepOutcome:
        # Reported failed, but journaled as still in flight: what it did is unknown, and
        # `resume` runs it again (reconciling) rather than taking it as failed.
        rc.bus.publish(StepFinished(target, step.id, step.action, "failed", attempts, started,
                                    rc.now(), error, {}, rollback))
        state.statuses[step.id] = "failed"
        return StepOutcome("failed", attempts, error=error, unsettled=True)

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
    # In flight when the run stopped: its first attempt now finishes that one's work.
    resumed = rc.journal.step_in_flight(rc.run_id, target.key, step.id, rollback)
    retries = step.retries
    wait = Backoff(retries.initial_delay, retries.multiplier, retries.max_delay, retries.jitter)
    attempt = attempts_before
    while True:
        attempt += 1
        at = rc.now()
        rc.journal.step_started(rc.run_id, target, step.id, rollback, attempt, at)
        rc.bus.publish(StepStarted(target, step.id, step.action, attempt, at))
        state.doing = f"{'rollback ' if rollback else ''}step {step.id} ({step.action})"
        try:
            outputs = yield from reconciling(
                rc, state, step.id,
                lambda again: action.run(state.context(rc, step.id, params, again, failure),
                                         params),
                attempt=attempt, timeout=rc.default_timeout(step.timeout),
                continuing=resumed and attempt == attempts_before + 1,
                stop_level=2 if rollback else 1)
        except Abandoned:
            raise
        except Unsettled as exc:
            return unsettled(attempt, str(exc))
        except Exception as exc:
            error, retryable = failure_text(step.action, exc)
            kind = exc.kind if isinstance(exc, StepFailed) else None
        else:
            return finish("succeeded", attempt, outputs)
        stopping = rc.stop_level >= (2 if rollback else 1)
        if not retryable or attempt - attempts_before >= retries.attempts or stopping:
            if stopping and retryable and attempt - attempts_before < retries.attempts:
                error += " (not retried: the run is stopping)"
                return replace(finish("failed", attempt, error=error), cut_short=True)
            return replace(finish("failed", attempt, failure_outputs(kind), error=error),
                           kind=kind)
        delay = wait.delay(attempt - attempts_before)
        rc.bus.publish(StepRetrying(target, step.id, attempt, delay, error, rc.now()))
        yield Sleep(delay)
