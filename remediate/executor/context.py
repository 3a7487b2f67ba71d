"""What every target of a run shares: the playbook, the machinery, the stop level."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from remediate.actions.contract import Target
from remediate.clock import Clock
from remediate.executor.calls import CallLayer
from remediate.executor.events import EventBus
from remediate.executor.preflight_policy import PreflightPolicy
from remediate.executor.runtime import Gates, Services, TargetRuntime
from remediate.executor.scheduler import Scheduler
from remediate.journal import Journal
from remediate.language.model import Playbook


@dataclass
class RunContext:
    run_id: str
    playbook: Playbook
    params: Mapping[str, Any]
    accepted: frozenset[str]
    dry_run: bool
    clock: Clock
    bus: EventBus
    journal: Journal
    scheduler: Scheduler
    calls: CallLayer
    gates: Gates
    services: Services
    policy: PreflightPolicy
    # Target kind -> the action that inspects it (remediate.kinds by default).
    inspect_actions: Mapping[str, str]
    # 0: running; 1: Ctrl-C once (no new steps); 2: twice (no rollback steps, stop waiting).
    stop_level: int = 0
    # Target key -> why this run may no longer work on it (a shared lease lost to
    # another run): it starts no further step, rollback included.
    lost: dict[str, str] = field(default_factory=dict)
    # `run --plan`: target key -> the facts the approved plan pinned (remediate.plans.drift);
    # a target whose facts moved since is refused. None: no plan.
    approved: Mapping[str, Mapping[str, Any]] | None = None
    # Why no new target starts (``--stop-on-alarm``: an alarm went into ALARM); the
    # targets in flight finish.
    halted: str | None = None

    @property
    def base_dir(self) -> str:
        return self.playbook.folder

    def now(self) -> datetime:
        return self.clock.wall()

    def runtime(self, target: Target) -> TargetRuntime:
        return TargetRuntime(self.clock, self.gates, self.services, target.account,
                             target.region)

    def default_timeout(self, timeout: float | None) -> float:
        return timeout if timeout is not None else self.playbook.execution.default_timeout
