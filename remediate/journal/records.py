"""What the journal hands back: plain, immutable records of a run and its targets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from remediate.actions.contract import Target

# Where a target is in its run. ``done`` targets carry their final status.
# "rollback": after a failure; "stop-rollback": because the operator stopped the run (the
# target then starts again, "restart", in a new pass).
Phase = str  # pending, inspected, steps, rollback, stop-rollback, restart, done
FINISHED_STATUSES = frozenset({"succeeded", "failed", "rolled_back", "refused", "skipped"})


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    playbook_path: str
    playbook_sha256: str
    params: dict[str, Any]
    options: dict[str, Any]
    targets: tuple[Target, ...]
    dry_run: bool
    status: str
    pid: int
    host: str
    started_at: str
    finished_at: str | None = None
    # The playbook's text when the run started (None: journaled by an older remediate).
    playbook_text: str | None = None


@dataclass(frozen=True)
class StepRecord:
    step_id: str
    rollback: bool
    status: str  # "running" (in flight when the run stopped), or a StepStatus
    attempts: int
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


@dataclass(frozen=True)
class TargetRecord:
    target: Target
    phase: Phase
    status: str | None
    facts: dict[str, Any] | None
    error: str | None
    steps: tuple[StepRecord, ...] = ()
    # A mutating call of one of its (non-rollback) steps was sent in this pass and not
    # rejected by AWS (its result may be unknown: sent just before a crash).
    mutated: bool = False
    # The target's pass: 1, then one more each time it is started again from its first
    # step; ``steps`` are this pass's rows.
    pass_number: int = 1
    # The rows of its latest pass that has any (a target waiting to start again shows
    # the attempt it was rolled back from): what reports show.
    last_steps: tuple[StepRecord, ...] = ()
    # Why its latest rollback runs (the failed step, or the operator's stop); None in a
    # journal an older remediate wrote (its ``error`` said it, until overwritten).
    rollback_reason: str | None = None

    @property
    def finished(self) -> bool:
        return self.phase == "done" and self.status in FINISHED_STATUSES

    def step(self, step_id: str, rollback: bool = False) -> StepRecord | None:
        for record in self.steps:
            if record.step_id == step_id and record.rollback == rollback:
                return record
        return None


@dataclass(frozen=True)
class CallRecord:
    call_id: int
    target_key: str
    step_id: str
    service: str
    operation: str
    params: dict[str, Any]
    status: str  # "sent" (no answer recorded), "ok", "error" or "unknown" (timed out, 5xx)
    request_id: str | None
    error: str | None
    response: dict[str, Any] | None


@dataclass(frozen=True)
class LockHolder:
    target_key: str
    run_id: str
    pid: int
    host: str
    started_at: str
    # A lease (--lock-table) taken for a Step Functions execution, and what its state
    # means for the lease (e.g. "which is still RUNNING": held past its expiry).
    execution_arn: str | None = None
    execution_note: str = ""

    def describe(self) -> str:
        return (f"locked by run {self.run_id} (pid {self.pid} on {self.host}, started "
                f"{self.started_at}){execution_text(self.execution_arn, self.execution_note)}")


def execution_text(execution_arn: str | None, note: str) -> str:
    """What a lock holder's description says of its Step Functions execution."""
    text = f" for Step Functions execution {execution_arn}" if execution_arn else ""
    return f"{text}, {note}" if note else text


@dataclass(frozen=True)
class LockOutcome:
    acquired: tuple[str, ...]
    # Held by a live run: the target must be refused.
    refused: dict[str, LockHolder]
    # Held by a dead process on this host: taken over (warn the operator).
    taken_over: dict[str, LockHolder]
