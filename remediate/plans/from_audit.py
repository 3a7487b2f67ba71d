"""A plan from a dry run: what `remediate plan --out FILE` saves once the audit has run."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from remediate.language.model import Playbook
from remediate.plans.document import Plan, PlannedTarget, iso_utc, planner
from remediate.plans.drift import pinned_facts
from remediate.plans.scripts import script_hashes
from remediate.reporters.record import RunRecord, severity


def plan_from_audit(record: RunRecord, playbook: Playbook, params: Mapping[str, Any],
                    accepted: frozenset[str], *, profile: str | None,
                    selection: Mapping[str, Any], selecting_tags: Sequence[str],
                    at: datetime | None = None) -> Plan:
    """The plan of the dry run ``record`` (closed): every target with the dry run's verdict,
    its facts as inspection read them, and the facts the run will check again."""
    targets = []
    for target in record.targets.values():
        facts = target.facts
        targets.append(PlannedTarget(
            target.target, target.status,
            pinned_facts(target.target.kind, facts, selecting_tags) if facts else {},
            facts, tuple({"kind": f.kind, "severity": severity(f), "detail": f.detail}
                         for f in target.findings),
            target.refused or target.error))
    folder = os.path.abspath(playbook.folder)
    return Plan(
        playbook_path=playbook.source,
        playbook_folder=folder,
        playbook_text=playbook.text or "",
        params=dict(params), accepted=accepted, targets=tuple(targets),
        planned_by=planner(), planned_at=iso_utc(at or datetime.now(UTC)),
        plan_run_id=record.run_id, profile=profile, selection=dict(selection),
        selecting_tags=tuple(sorted(selecting_tags)),
        scripts=script_hashes(playbook, params, folder))
