"""One action, two engines: a playbook run by the local executor and, exported, by moto's
Step Functions on a fresh sandbox fleet of the same shape; each run's end state, seen the
same way, so a parity test compares them.

Fleets are built anew for each engine, so what ``observe`` returns must not name ids:
per kind of target, the end state (see :func:`sfn_support.end_state`), say.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from sfn_support import NO_RETRIES, ec2_targets, from_text, item_counts, run_playbook

from remediate.actions.contract import Target
from remediate.clock import VirtualClock
from remediate.executor.engine import Executor
from remediate.executor.events import EventBus
from remediate.export.moto_engine import MotoStepFunctions
from remediate.journal import Journal
from remediate.language.model import Playbook
from remediate.sandbox import Durations, Fleet, FleetSpec, Sandbox

Observe = Callable[[Sandbox, Fleet], Any]
Prepare = Callable[[Sandbox, Fleet, VirtualClock], Mapping[str, Any]]


@dataclass(frozen=True)
class Parity:
    local: Any
    stepfunctions: Any
    local_statuses: Mapping[str, int]
    sfn_status: str
    # Targets per outcome on Step Functions ({"succeeded": 2}), as local_statuses locally.
    sfn_statuses: Mapping[str, int] = field(default_factory=dict)


def one_step(action: str, params: Mapping[str, Any] | None = None, *,
             kind: str = "ec2-instance", rollback: list[dict[str, Any]] | None = None,
             tags: Mapping[str, str] | None = None) -> str:
    """A playbook of one step of ``action`` (``with: params``) on the sandbox's targets,
    every target in one batch, none skipped as healthy."""
    step: dict[str, Any] = {"id": "step", "action": action}
    if params:
        step["with"] = dict(params)
    document: dict[str, Any] = {
        "version": 1, "name": "parity",
        "targets": {"kind": kind, "tags": dict(tags or {"incident": "crowdstrike-2024-07-19"})},
        "steps": [step],
        "guards": {"batches": ["100%"], "max_failure_percent": 100,
                   "pause_after_canary": False, "skip_healthy": False},
    }
    if rollback:
        document["rollback"] = rollback
    return yaml.safe_dump(document, sort_keys=False)


def both_engines(spec: FleetSpec, text: str, observe: Observe, *,
                 prepare: Prepare | None = None, accepted: frozenset[str] = frozenset(),
                 targets: Callable[[Fleet], list[Target]] | None = None,
                 durations: Durations | None = None, **params: str) -> Parity:
    """Run ``text`` locally, then exported on moto, each on its own fleet of ``spec``
    (``durations``: the sandbox's, default its own)."""
    pick = targets or (lambda fleet: ec2_targets(fleet.targets))
    clock = VirtualClock()
    with Sandbox(clock=clock, durations=durations or Durations()) as sb:
        fleet = sb.build_fleet(spec)
        playbook, bound = _playbook(text, sb, fleet, clock, prepare, params)
        result = Executor(playbook, pick(fleet),
                          clients=lambda _a, region, service: sb.client(service, region,
                                                                         NO_RETRIES),
                          clock=clock, bus=EventBus(), journal=Journal.memory(),
                          run_id="local-1", params=bound, accepted=accepted).run()
        local = observe(sb, fleet)
    clock = VirtualClock()
    with MotoStepFunctions(clock) as engine, Sandbox(clock=clock,
                                                     durations=durations or Durations()) as sb:
        fleet = sb.build_fleet(spec)
        playbook, bound = _playbook(text, sb, fleet, clock, prepare, params)
        outcome = run_playbook(sb, engine, playbook, bound, pick(fleet), accepted=accepted)
        remote = observe(sb, fleet)
        items = dict(item_counts(sb, outcome))
    return Parity(local, remote, dict(result.summary), outcome.status, items)


def _playbook(text: str, sb: Sandbox, fleet: Fleet, clock: VirtualClock,
              prepare: Prepare | None, params: Mapping[str, str]) -> tuple[Playbook, Any]:
    extra = prepare(sb, fleet, clock) if prepare else {}
    return from_text(text, **{**params, **{k: str(v) for k, v in extra.items()}})
