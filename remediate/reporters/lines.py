"""One line of text per event: the plain (CI log) output, and the notable lines the
progress display prints above its bars. Unknown events have no line."""

from __future__ import annotations

from collections import Counter
from functools import singledispatch

from remediate.actions.contract import Target
from remediate.executor.events import (
    AlarmStopped,
    ApiOutcomeUnknown,
    ApiRetrying,
    BatchFinished,
    BatchStarted,
    BudgetExhausted,
    CanaryQuestion,
    Event,
    Interrupted,
    Notice,
    RampWidened,
    RollbackStarted,
    RunFinished,
    RunResumed,
    RunStarted,
    StepFinished,
    StepPlanned,
    StepReconciling,
    StepRetrying,
    StepStarted,
    TargetFinished,
    TargetInspected,
    TargetRestarted,
    TargetStarted,
)
from remediate.language.durations import format_duration
from remediate.reporters.record import OUTCOMES
from remediate.reporters.wording import plural


def _who(target: Target) -> str:
    return f"{target.id} ({target.region})"


def _step(step_id: str, action: str) -> str:
    return f"{step_id} ({action})"


@singledispatch
def line(event: Event) -> str | None:
    return None


@line.register
def _(event: RunStarted) -> str:
    mode = " (dry run: nothing will change)" if event.dry_run else ""
    return (f"run {event.run_id}: {event.playbook}, {plural(len(event.targets), 'target')}, "
            f"{plural(len(event.steps), 'step')}{mode}")


@line.register
def _(event: RunResumed) -> str:
    return (f"run {event.run_id} started {event.started_at.isoformat(timespec='seconds')}; "
            f"{plural(event.finished_before, 'target')} finished before this resume")


@line.register
def _(event: TargetRestarted) -> str:
    return f"{_who(event.target)}: starting again from its first step"


@line.register
def _(event: TargetInspected) -> str:
    # A refusal is said once, by the TargetFinished that follows.
    kinds = ", ".join(f.kind for f in event.findings)
    return f"{_who(event.target)}: inspected" + (f"; findings: {kinds}" if kinds else "")


@line.register
def _(event: StepPlanned) -> str:
    head = f"{_who(event.target)}: {_step(event.step_id, event.action)}"
    if event.skip:
        return f"{head} would skip: {event.skip}"
    return f"{head} would call {', '.join(event.calls) or 'nothing'}"


@line.register
def _(event: BatchStarted) -> str:
    ramp = f", on a ramp: up to {event.cap} in flight" if event.cap is not None else ""
    return (f"batch {event.index + 1}/{event.total_batches}: "
            f"{plural(len(event.targets), 'target')}{ramp}")


@line.register
def _(event: BatchFinished) -> str:
    others = "".join(f", {n} {status.replace('_', ' ')}" for status, n in event.others if n)
    return (f"batch {event.index + 1}/{event.total_batches} done: {event.succeeded} succeeded, "
            f"{event.failed} failed, {event.rolled_back} rolled back{others}")


@line.register
def _(event: RampWidened) -> str:
    return (f"ramp: up to {event.cap} targets in flight "
            f"({plural(event.results, 'result')} in after the canary)")


@line.register
def _(event: CanaryQuestion) -> str:
    counts = Counter(status for _, status in event.statuses)
    said = ", ".join(f"{counts[status]} {status.replace('_', ' ')}"
                     for status in ("succeeded", "failed", "rolled_back", "refused"))
    if counts["interrupted"]:
        said += f", {counts['interrupted']} interrupted"
    budget = (f"failure budget: {event.failed} failed, {event.allowed} allowed"
              if event.allowed is not None else f"{event.failed} failed so far")
    return (f"canary batch done ({plural(len(event.statuses), 'target')}): {said}; {budget}; "
            f"{plural(event.remaining, 'target')} to go")


@line.register
def _(event: TargetStarted) -> str:
    return f"{_who(event.target)}: started"


@line.register
def _(event: StepStarted) -> str:
    again = f" (attempt {event.attempt})" if event.attempt > 1 else ""
    return f"{_who(event.target)}: {_step(event.step_id, event.action)} started{again}"


@line.register
def _(event: StepRetrying) -> str:
    return (f"{_who(event.target)}: {event.step_id} attempt {event.attempt} failed: "
            f"{event.error}; retrying in {format_duration(event.delay)}")


@line.register
def _(event: ApiRetrying) -> str:
    many = f" for {plural(len(event.targets), 'target')}" if event.targets else ""
    return (f"{event.api}{many}: {event.code}, retry {event.attempt} in "
            f"{format_duration(event.delay)}")


@line.register
def _(event: ApiOutcomeUnknown) -> str:
    many = f" for {plural(len(event.targets), 'target')}" if event.targets else ""
    return (f"{event.api}{many}: {event.code}, outcome unknown; reading AWS's state "
            "instead of sending it again")


@line.register
def _(event: StepReconciling) -> str:
    return (f"{_who(event.target)}: {event.step_id}: {event.operation} outcome unknown; "
            f"reconciling from AWS's state in {format_duration(event.delay)}")


@line.register
def _(event: StepFinished) -> str:
    kind = "rollback step " if event.rollback else ""
    took = format_duration((event.finished_at - event.started_at).total_seconds())
    tries = f", {plural(event.attempts, 'attempt')}" if event.attempts > 1 else ""
    text = (f"{_who(event.target)}: {kind}{_step(event.step_id, event.action)} "
            f"{event.status} in {took}{tries}")
    return f"{text}: {event.error}" if event.error else text


@line.register
def _(event: RollbackStarted) -> str:
    return f"{_who(event.target)}: rolling back: {event.reason}"


@line.register
def _(event: TargetFinished) -> str:
    text = f"{_who(event.target)}: {event.status.replace('_', ' ')}"
    return f"{text}: {event.error}" if event.error else text


@line.register
def _(event: BudgetExhausted) -> str:
    return (f"failure budget exhausted: {event.failed} failed, {event.allowed} allowed; "
            "no new targets will start")


@line.register
def _(event: AlarmStopped) -> str:
    return (f"alarm {event.alarm} ({event.account}/{event.region}) {event.reason}: no new "
            f"targets will start; {plural(event.in_flight, 'target')} in flight will finish")


@line.register
def _(event: Interrupted) -> str:
    again = "interrupted again" if event.second else "interrupted"
    shown = ", ".join(event.in_flight[:10]) + (", ..." if len(event.in_flight) > 10 else "")
    return f"{again}: {plural(len(event.in_flight), 'target')} in flight" + (
        f": {shown}" if shown else "")


@line.register
def _(event: Notice) -> str:
    return f"{event.level}: {event.message}"


@line.register
def _(event: RunFinished) -> str:
    order = {status: n for n, status in enumerate(OUTCOMES)}  # as the reports say them
    counts = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in
                       sorted(event.summary.items(), key=lambda kv: order.get(kv[0], 99))
                       if count)
    text = f"run {event.run_id} finished: {counts or 'no targets'}"
    if event.estimate_seconds is not None:
        text += f"; estimated duration {format_duration(event.estimate_seconds)}"
    return text
