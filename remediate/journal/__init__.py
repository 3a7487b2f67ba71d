"""The run journal (SQLite): what a crashed or interrupted run needs to resume."""

from remediate.journal.records import (
    FINISHED_STATUSES,
    CallRecord,
    LockHolder,
    LockOutcome,
    RunRecord,
    StepRecord,
    TargetRecord,
)
from remediate.journal.store import Journal

__all__ = [
    "FINISHED_STATUSES",
    "CallRecord",
    "Journal",
    "LockHolder",
    "LockOutcome",
    "RunRecord",
    "StepRecord",
    "TargetRecord",
]
