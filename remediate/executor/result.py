"""What a run returns to its caller (the CLI maps it to an exit code)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from remediate.executor.estimate import Estimate
from remediate.executor.events import PermissionChecked

BAD = frozenset({"failed", "rolled_back", "interrupted"})


@dataclass(frozen=True)
class RunResult:
    run_id: str
    dry_run: bool
    # Target key (account/region/id) -> its status; every selected target has one
    # (a TargetStatus, or "planned" for a dry run's targets that passed pre-flight).
    statuses: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    budget_exhausted: bool = False
    # The operator said no after the canary batch: the rest were not run.
    declined: bool = False
    # --stop-on-alarm: the alarm that stopped the run starting targets, and why (None: no
    # alarm fired, or it fired when every target had started).
    stopped_by_alarm: str | None = None
    estimate: Estimate | None = None
    # Run services whose finish() failed (e.g. a rescue instance left running), why.
    cleanup_errors: tuple[str, ...] = ()
    # Requests sent to AWS, by "service:Operation" (a merged call counts once).
    api_calls: dict[str, int] = field(default_factory=dict)
    # Mutating calls the dry-run guard refused (a bug in an action if ever non-zero).
    refused_mutations: int = 0
    # Dry runs: what EC2's DryRun=True said about each mutating API the run would call.
    permissions: tuple[PermissionChecked, ...] = ()

    @property
    def denied(self) -> list[PermissionChecked]:
        return [p for p in self.permissions if p.outcome == "denied"]

    @property
    def summary(self) -> dict[str, int]:
        return dict(Counter(self.statuses.values()))

    @property
    def ok(self) -> bool:
        """Nothing failed, nothing was left half done or not started, everything was
        cleaned up."""
        return (not self.interrupted and not self.cleanup_errors and not self.declined
                and self.stopped_by_alarm is None and not BAD.intersection(self.statuses.values()))
