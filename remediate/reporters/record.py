"""The run as a report model: one subscriber accumulates it, every report file renders it.

A resumed run's record starts from the journal (``RunResumed``, then a
``TargetResumed`` per target), so every report describes the whole run: its
start, every target's status, findings and steps. The retry counters, notices
and the budget and Ctrl-C notes are this process's (the journal does not keep
them).

``RunRecord.as_dict()`` is the JSON report, read by other tools; these keys are a
contract and are never removed (new ones may be added)::

    run_id, playbook, dry_run, started_at, finished_at,
    summary: {succeeded, failed, skipped, rolled_back, ...},
    targets: [{id, region, status, findings: [...],
               steps: [{id, action, status, attempts, started_at, finished_at, error}]}]

Times are ISO-8601 UTC (``2024-07-19T05:30:00Z``).

Where each target counts in the summary: every target in exactly one of
``succeeded``, ``failed``, ``rolled_back``, ``interrupted``, ``refused``,
``skipped`` and ``not_run``; they add up to ``total``, and the console, the
Markdown and the JUnit report count the same way (issue 16: an interrupted
target was counted as failed, a refused one as skipped too):

- ``refused``: blocked or unaccepted findings, another run holds it, or a step failed
  leaving it as it was (its capacity could not be held: that step shows ``failed``);
- ``interrupted``: started, not finished (Ctrl-C, an unsettled outcome): it needs a
  look or a ``resume``, but it did not fail;
- ``not_run``: never started (a dry run's planned targets, or a run that ended
  before reaching them without saying why);
- ``skipped``: left alone on purpose (already healthy, the failure budget spent,
  the canary not confirmed, a ``--stop-on-alarm`` alarm fired: their error says
  so, and ``stopped_by_alarm`` names the alarm).

One refinement, inside ``interrupted``: ``interrupted_rolled_back`` are the
interrupted targets whose rollback ran to its end (back where they were;
``resume`` starts them again).

In a dry run nothing "succeeds": a target that would be worked on is ``planned``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from remediate.actions.contract import Target
from remediate.aws.errors import ErrorClass, classify
from remediate.executor.events import (
    AlarmStopped,
    ApiOutcomeUnknown,
    ApiRetrying,
    BudgetExhausted,
    Forecasted,
    Interrupted,
    JournaledStep,
    Notice,
    PermissionChecked,
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
    TargetResumed,
    TargetStarted,
)
from remediate.findings import FINDINGS, Finding
from remediate.reporters.subscriber import Subscriber

log = logging.getLogger(__name__)

# The summary's keys, one per target, in the order reports say them.
OUTCOMES = ("succeeded", "failed", "rolled_back", "interrupted", "refused", "skipped", "not_run")
# Target status -> the summary key it counts in (the rest count as their own status).
SUMMARY_KEY = {"planned": "not_run", "pending": "not_run"}
# Facts worth a line in a report; the full facts stay in the journal.
FACT_EXCERPT = ("state", "status", "availability_zone", "instance_type", "platform",
                "lifecycle", "root_volume_id", "rescue_image_id", "directory_id", "user_name",
                "running_mode")
# Of those, the ones that say something only when set (no rescue image: not worth a word).
WHEN_SET = frozenset({"rescue_image_id"})


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


@dataclass
class StepRecord:
    id: str
    action: str
    status: str = "running"  # then succeeded, failed, skipped; interrupted if never finished
    attempts: int = 1
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    rollback: bool = False

    @property
    def seconds(self) -> float:
        if self.started_at is None or self.finished_at is None:
            return 0.0
        return max(0.0, (self.finished_at - self.started_at).total_seconds())

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "action": self.action, "status": self.status,
                "attempts": self.attempts, "started_at": iso(self.started_at),
                "finished_at": iso(self.finished_at), "error": self.error,
                "rollback": self.rollback}


@dataclass(frozen=True)
class PlannedStep:
    """Dry runs: what one step would do to one target."""

    step: str
    action: str
    calls: tuple[str, ...]
    skip: str | None
    mutating: bool
    condition: str | None = None  # runs only if this holds (known at run time)

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "action": self.action, "calls": list(self.calls),
                "skip": self.skip, "mutating": self.mutating, "condition": self.condition}


@dataclass
class TargetRecord:
    target: Target
    status: str = "pending"
    findings: tuple[Finding, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)
    refused: str | None = None
    error: str | None = None
    rollback_reason: str | None = None
    started: bool = False
    finished: bool = False
    rolled_back: bool = False  # its rollback ran to the end (TargetFinished.rolled_back)
    steps: dict[str, StepRecord] = field(default_factory=dict)
    planned: list[PlannedStep] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(step.seconds for step in self.steps.values())

    def fact_excerpt(self) -> dict[str, Any]:
        """The facts worth a line in a report (:data:`FACT_EXCERPT`)."""
        return {key: self.facts[key] for key in FACT_EXCERPT if key in self.facts
                and (key not in WHEN_SET or self.facts[key] is not None)}

    @property
    def failed_step(self) -> StepRecord | None:
        """The (non-rollback) step that failed or was cut off, if any."""
        for step in self.steps.values():
            if not step.rollback and step.status in ("failed", "interrupted"):
                return step
        return None

    def as_dict(self) -> dict[str, Any]:
        t = self.target
        return {
            "id": t.id, "region": t.region, "status": self.status,
            "findings": [{"kind": f.kind, "severity": severity(f), "detail": f.detail}
                         for f in self.findings],
            "steps": [step.as_dict() for step in self.steps.values()],
            "account": t.account, "kind": t.kind, "error": self.error,
            "refused": self.refused, "rollback_reason": self.rollback_reason,
            "rolled_back": self.rolled_back,
            "facts": {k: _plain(v) for k, v in self.fact_excerpt().items()},
            "planned": [p.as_dict() for p in self.planned],
        }


def _journaled(step: JournaledStep) -> StepRecord:
    return StepRecord(step.step_id, step.action, step.status, step.attempts, step.started_at,
                      step.finished_at, step.error, step.rollback)


def put_back(event: TargetResumed) -> bool:
    """Whether the journal shows the target's rollback ran to its end: rolled back after a
    failure, or put back after a Ctrl-C (phase ``restart`` after rollback steps)."""
    if event.status == "rolled_back":
        return True
    return (event.status == "interrupted" and event.phase == "restart"
            and any(s.rollback for s in event.steps)
            and all(s.status in ("succeeded", "skipped") for s in event.steps if s.rollback))


def severity(finding: Finding) -> str:
    kind = FINDINGS.get(finding.kind)
    return kind.severity if kind is not None else "info"


Writer = Callable[["RunRecord"], None]


class RunRecord(Subscriber):
    """Accumulates a run from its events; writes every attached report when it ends."""

    def __init__(self) -> None:
        self.run_id = ""
        self.playbook = ""
        self.dry_run = False
        self.started_at: datetime | None = None
        self.finished_at: datetime | None = None
        self.step_ids: tuple[str, ...] = ()
        self.targets: dict[str, TargetRecord] = {}
        self.estimate_seconds: float | None = None
        self.forecast: Forecasted | None = None
        self.step_retries = 0
        self.api_retries = 0
        self.throttled = 0
        # Mutating calls whose outcome was unknown, and the step runs that reconciled them.
        self.unknown_outcomes = 0
        self.reconciled = 0
        # When each retry happened, and its kind ("throttled", "api", "step"): the HTML
        # report charts them over time.
        self.retried_at: list[tuple[datetime, str]] = []
        self.notices: list[Notice] = []
        self.permissions: list[PermissionChecked] = []
        self.budget: BudgetExhausted | None = None
        self.alarm: AlarmStopped | None = None  # --stop-on-alarm: the alarm that fired
        self.interrupted = False
        self.closed = False
        self.writers: list[Writer] = []

    def target(self, target: Target) -> TargetRecord:
        record = self.targets.get(target.key)
        if record is None:
            record = self.targets[target.key] = TargetRecord(target)
        return record

    # -- events ---------------------------------------------------------------------------

    def on_run_started(self, event: RunStarted) -> None:
        self.run_id, self.playbook, self.dry_run = event.run_id, event.playbook, event.dry_run
        self.started_at, self.step_ids = event.started_at, event.steps
        for target in event.targets:
            self.target(target)

    def on_run_resumed(self, event: RunResumed) -> None:
        self.started_at = event.started_at  # the whole run, not this process's part

    def on_target_resumed(self, event: TargetResumed) -> None:
        """The target as the journal has it; this process's events go on from there."""
        record = self.target(event.target)
        record.status, record.error = event.status or "pending", event.error
        record.facts, record.findings = dict(event.facts), event.findings
        record.refused = event.error if event.status == "refused" else None
        record.steps = {s.step_id: _journaled(s) for s in event.steps}
        record.rollback_reason = event.error if any(s.rollback for s in event.steps) else None
        record.started = bool(event.steps) or event.phase not in ("pending", "inspected")
        record.finished = event.phase == "done"
        record.rolled_back = put_back(event)

    def on_target_restarted(self, event: TargetRestarted) -> None:
        """A new pass: the rolled-back attempt's steps are history."""
        record = self.target(event.target)
        record.steps, record.rollback_reason = {}, None
        record.status, record.error, record.finished = "pending", None, False
        record.rolled_back = False

    def on_target_inspected(self, event: TargetInspected) -> None:
        record = self.target(event.target)
        record.facts, record.findings = dict(event.facts), event.findings
        if event.refused:
            record.refused, record.status = event.refused, "refused"

    def on_step_planned(self, event: StepPlanned) -> None:
        self.target(event.target).planned.append(
            PlannedStep(event.step_id, event.action, event.calls, event.skip, event.mutating,
                        event.condition))

    def on_target_started(self, event: TargetStarted) -> None:
        self.target(event.target).started = True

    def on_step_started(self, event: StepStarted) -> None:
        record = self.target(event.target)
        record.started = True
        step = record.steps.get(event.step_id)
        if step is None:
            step = record.steps[event.step_id] = StepRecord(event.step_id, event.action)
        step.status, step.attempts, step.finished_at = "running", event.attempt, None
        step.rollback = record.rollback_reason is not None
        if step.started_at is None:
            step.started_at = event.at

    def on_step_retrying(self, event: StepRetrying) -> None:
        self.step_retries += 1
        if event.at is not None:
            self.retried_at.append((event.at, "step"))

    def on_api_retrying(self, event: ApiRetrying) -> None:
        self.api_retries += 1
        throttled = classify(event.code) is ErrorClass.THROTTLED
        if throttled:
            self.throttled += 1
        if event.at is not None:
            self.retried_at.append((event.at, "throttled" if throttled else "api"))

    def on_api_outcome_unknown(self, event: ApiOutcomeUnknown) -> None:
        self.unknown_outcomes += 1

    def on_step_reconciling(self, event: StepReconciling) -> None:
        self.reconciled += 1

    def on_step_finished(self, event: StepFinished) -> None:
        record = self.target(event.target)
        step = record.steps.get(event.step_id)
        if step is None:
            step = record.steps[event.step_id] = StepRecord(event.step_id, event.action)
        step.status, step.attempts, step.error = event.status, event.attempts, event.error
        step.started_at, step.finished_at = event.started_at, event.finished_at
        step.rollback = event.rollback

    def on_rollback_started(self, event: RollbackStarted) -> None:
        self.target(event.target).rollback_reason = event.reason

    def on_target_finished(self, event: TargetFinished) -> None:
        record = self.target(event.target)
        record.status, record.error, record.finished = event.status, event.error, True
        record.rolled_back = event.rolled_back or event.status == "rolled_back"
        if event.status == "refused" and record.refused is None:
            record.refused = event.error

    def on_budget_exhausted(self, event: BudgetExhausted) -> None:
        self.budget = event

    def on_alarm_stopped(self, event: AlarmStopped) -> None:
        self.alarm = event

    def on_interrupted(self, event: Interrupted) -> None:
        self.interrupted = True

    def on_permission_checked(self, event: PermissionChecked) -> None:
        self.permissions.append(event)

    def denied(self) -> list[PermissionChecked]:
        return [p for p in self.permissions if p.outcome == "denied"]

    def on_forecasted(self, event: Forecasted) -> None:
        self.forecast = event

    def on_notice(self, event: Notice) -> None:
        self.notices.append(event)

    def on_run_finished(self, event: RunFinished) -> None:
        self.finished_at, self.estimate_seconds = event.finished_at, event.estimate_seconds
        self.close()

    # -- the end of the run ---------------------------------------------------------------

    def close(self) -> None:
        """Settle what never finished and write every report, once.

        Called on ``RunFinished``; call it yourself when a run ends without one.
        """
        if self.closed:
            return
        self.closed = True
        for record in self.targets.values():
            self._settle(record)
        for writer in self.writers:
            try:
                writer(self)
            except OSError as exc:  # checked writable before the run; since then, not
                self.failures += 1
                log.error("error: could not write the report %s: %s",
                          getattr(writer, "path", writer), exc)
            except Exception:
                self.failures += 1
                log.exception("writing a report with %r failed", writer)

    def _settle(self, record: TargetRecord) -> None:
        for step in record.steps.values():
            if step.status == "running":
                step.status = "interrupted"
        if self.dry_run and record.status in ("pending", "succeeded"):
            record.status = "planned"
        elif not record.finished and record.status == "pending" and record.started:
            record.status = "interrupted"

    def summary(self) -> dict[str, int]:
        """Targets by outcome, each counted once (see the module's docstring)."""
        counts = dict.fromkeys(OUTCOMES, 0)
        put_back = 0
        for record in self.targets.values():
            key = SUMMARY_KEY.get(record.status, record.status)
            counts[key if key in counts else "failed"] += 1
            put_back += record.status == "interrupted" and record.rolled_back
        counts["total"] = len(self.targets)
        counts["interrupted_rolled_back"] = put_back
        return counts

    def by_status(self, *statuses: str) -> list[TargetRecord]:
        return [r for r in self.targets.values() if r.status in statuses]

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "playbook": self.playbook,
            "dry_run": self.dry_run,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "summary": self.summary(),
            "targets": [record.as_dict() for record in self.targets.values()],
            "steps": list(self.step_ids),
            "estimate_seconds": self.estimate_seconds,
            "forecast": None if self.forecast is None else {
                "seconds": self.forecast.seconds, "targets": self.forecast.targets,
                "mutating_calls": dict(self.forecast.calls),
                "assumptions": self.forecast.assumptions},
            "retries": {"steps": self.step_retries, "api": self.api_retries,
                        "throttled": self.throttled, "unknown_outcomes": self.unknown_outcomes,
                        "reconciled": self.reconciled},
            "notices": [{"level": n.level, "message": n.message} for n in self.notices],
            "budget_exhausted": None if self.budget is None else {
                "failed": self.budget.failed, "allowed": self.budget.allowed},
            "interrupted": self.interrupted,
            "stopped_by_alarm": None if self.alarm is None else {
                "alarm": self.alarm.alarm, "account": self.alarm.account,
                "region": self.alarm.region, "reason": self.alarm.reason,
                "in_flight": self.alarm.in_flight},
            "permissions": [
                {"account": p.account, "region": p.region, "api": p.api,
                 "iam_action": p.iam_action, "outcome": p.outcome, "detail": p.detail,
                 "probed_with": p.target}
                for p in sorted(self.permissions, key=lambda p: (p.account, p.region, p.api))],
        }
