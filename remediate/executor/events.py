"""Typed events the executor publishes. Reporters subscribe; the executor never prints.

A subscriber that raises is logged and dropped from that event, never allowed to
stop the run (ansible's callback plugins work the same way).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from remediate.actions.contract import Target
from remediate.findings import Finding

log = logging.getLogger(__name__)

StepStatus = Literal["succeeded", "failed", "skipped"]
TargetStatus = Literal["succeeded", "failed", "skipped", "rolled_back", "refused", "interrupted"]


@dataclass(frozen=True)
class Event:
    pass


@dataclass(frozen=True)
class RunStarted(Event):
    run_id: str
    playbook: str
    dry_run: bool
    started_at: datetime
    targets: tuple[Target, ...]
    steps: tuple[str, ...]


@dataclass(frozen=True)
class RunResumed(Event):
    """Published by a resumed run right after :class:`RunStarted`: the run began at
    ``started_at``, and a :class:`TargetResumed` per target follows, so reporters
    describe the whole run, not only this process's part of it."""

    run_id: str
    started_at: datetime
    finished_before: int  # targets that had finished in earlier processes of the run


@dataclass(frozen=True)
class JournaledStep:
    """A step as the journal has it (``status`` "running": in flight when it stopped)."""

    step_id: str
    action: str
    status: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None = None
    rollback: bool = False


@dataclass(frozen=True)
class TargetResumed(Event):
    """A target as the journal has it when the run resumes: its status so far (None:
    never started), why, its facts and their findings, and the steps of its latest pass."""

    target: Target
    phase: str
    status: str | None
    error: str | None
    facts: dict[str, Any]
    findings: tuple[Finding, ...]
    steps: tuple[JournaledStep, ...]


@dataclass(frozen=True)
class TargetInspected(Event):
    target: Target
    facts: dict[str, Any]
    findings: tuple[Finding, ...]
    # Why the target will not be worked on (a blocking or unaccepted finding), if so.
    refused: str | None = None


@dataclass(frozen=True)
class StepPlanned(Event):
    """Dry runs: what a step would do to a target."""

    target: Target
    step_id: str
    action: str
    calls: tuple[str, ...]
    skip: str | None
    mutating: bool
    # Runs only if this holds, which the dry run cannot know (an earlier step's output).
    condition: str | None = None


PermissionOutcome = Literal["allowed", "denied", "unchecked"]


@dataclass(frozen=True)
class PermissionChecked(Event):
    """Dry runs: what EC2's ``DryRun=True`` said about an API the real run would call."""

    account: str
    region: str
    api: str  # "ec2:StopInstances"
    iam_action: str  # "ec2:StopInstances"
    outcome: PermissionOutcome
    detail: str  # AWS's answer, or why it could not be asked
    target: str = ""  # the target whose ids the probe carried


@dataclass(frozen=True)
class BatchStarted(Event):
    """``cap``: the batch is a ramp (``guards.rollout: ramp``) starting with at most this
    many targets in flight; None: a batch, all of it started at once (up to
    ``execution.concurrency``)."""

    index: int
    targets: tuple[Target, ...]
    total_batches: int
    cap: int | None = None


@dataclass(frozen=True)
class BatchFinished(Event):
    """``failed`` counts the targets that ended failed, ``rolled_back`` those put back as
    they were (both spend the failure budget); ``others``: any other outcome, by status
    (interrupted, skipped, refused)."""

    index: int
    succeeded: int
    failed: int
    total_batches: int
    rolled_back: int = 0
    others: tuple[tuple[str, int], ...] = ()

    @classmethod
    def of(cls, index: int, statuses: Iterable[str], total_batches: int) -> BatchFinished:
        """The event for a batch whose targets ended with ``statuses``."""
        counts = Counter(statuses)
        others = tuple(sorted((status, n) for status, n in counts.items()
                              if status not in ("succeeded", "failed", "rolled_back")))
        return cls(index, counts["succeeded"], counts["failed"], total_batches,
                   counts["rolled_back"], others)


@dataclass(frozen=True)
class RampWidened(Event):
    """The ramp's results earned it a larger cap: up to ``cap`` targets in flight."""

    cap: int
    results: int


@dataclass(frozen=True)
class CanaryQuestion(Event):
    """The canary batch is done and the operator is about to be asked whether to go on:
    a progress display stops repainting (and says how the canary fared) until
    :class:`CanaryAnswered`. ``statuses``: the canary's targets (key, status);
    ``failed``/``allowed``: the failure budget so far (None: not known)."""

    statuses: tuple[tuple[str, str], ...]
    remaining: int
    failed: int
    allowed: int | None = None


@dataclass(frozen=True)
class CanaryAnswered(Event):
    go_on: bool


@dataclass(frozen=True)
class TargetStarted(Event):
    target: Target


@dataclass(frozen=True)
class StepStarted(Event):
    target: Target
    step_id: str
    action: str
    attempt: int
    at: datetime


@dataclass(frozen=True)
class StepRetrying(Event):
    target: Target
    step_id: str
    attempt: int
    delay: float
    error: str
    at: datetime | None = None  # when it failed (the reports chart retries over time)


@dataclass(frozen=True)
class ApiRetrying(Event):
    """One API call is retried (throttled or transient); ``delay`` in seconds."""

    api: str
    code: str
    attempt: int
    delay: float
    targets: tuple[str, ...] = ()
    at: datetime | None = None  # when AWS answered so


@dataclass(frozen=True)
class ApiOutcomeUnknown(Event):
    """A mutating call failed without saying whether AWS did it (a 5xx, a timeout), and
    it is not resent: each of its targets' steps reconciles from AWS's state."""

    api: str
    code: str
    targets: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepReconciling(Event):
    """A step is run again from its start, reading AWS's state first, after one of its
    calls had an unknown outcome; this costs no attempt."""

    target: Target
    step_id: str
    attempt: int
    operation: str
    delay: float


@dataclass(frozen=True)
class StepFinished(Event):
    target: Target
    step_id: str
    action: str
    status: StepStatus
    attempts: int
    started_at: datetime
    finished_at: datetime
    error: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    rollback: bool = False


@dataclass(frozen=True)
class RollbackStarted(Event):
    target: Target
    reason: str


@dataclass(frozen=True)
class TargetRestarted(Event):
    """The target starts again from its first step (a new pass): it was rolled back
    because the run was stopped. What its earlier pass did is history."""

    target: Target
    reason: str | None = None


@dataclass(frozen=True)
class TargetFinished(Event):
    target: Target
    status: TargetStatus
    error: str | None = None
    # Its rollback ran to the end: it is back where it was. Always so for "rolled_back";
    # an "interrupted" target put back after a Ctrl-C says so here (resume restarts it).
    rolled_back: bool = False


@dataclass(frozen=True)
class BudgetExhausted(Event):
    failed: int
    allowed: int


@dataclass(frozen=True)
class AlarmStopped(Event):
    """``--stop-on-alarm``: ``alarm`` is in ALARM (or could not be read): no new target
    starts; the ``in_flight`` ones finish their steps."""

    alarm: str
    account: str
    region: str
    reason: str  # "is in ALARM: <the alarm's StateReason>"
    in_flight: int


@dataclass(frozen=True)
class Interrupted(Event):
    in_flight: tuple[str, ...]
    second: bool = False


@dataclass(frozen=True)
class Notice(Event):
    level: Literal["info", "warning", "error"]
    message: str


@dataclass(frozen=True)
class Forecasted(Event):
    """A dry run's forecast of the real run, from rehearsing it on a model of the fleet
    (:mod:`remediate.forecast`): its duration and mutating calls by operation."""

    seconds: float
    calls: tuple[tuple[str, int], ...]
    targets: int
    assumptions: str


@dataclass(frozen=True)
class RunFinished(Event):
    run_id: str
    finished_at: datetime
    summary: dict[str, int]
    estimate_seconds: float | None = None


Handler = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._handlers: list[Handler] = []
        self._lock = threading.Lock()
        self.failures = 0

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def publish(self, event: Event) -> None:
        with self._lock:
            for handler in list(self._handlers):
                try:
                    handler(event)
                except Exception:
                    self.failures += 1
                    log.exception("reporter %r failed on %s; the run goes on",
                                  handler, type(event).__name__)
