"""What the HTML report draws, as plain JSON: the page's script renders it.

Built from the :class:`RunRecord` like every report (a resumed run's record starts
from the journal, so the charts cover the whole run; retries are this process's,
as the journal does not keep them). Times are seconds since the run started, so
the page needs no date arithmetic and no time zone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from remediate.language.durations import format_duration
from remediate.reporters.record import RunRecord, TargetRecord, iso
from remediate.reporters.wording import outcome


def _offset(moment: datetime | None, origin: datetime | None) -> float | None:
    if moment is None or origin is None:
        return None
    return round(max(0.0, (moment - origin).total_seconds()), 3)


def _where(record: TargetRecord) -> str:
    """The place a target is counted under in "outcome per account and AZ"."""
    zone = record.facts.get("availability_zone") or record.target.region
    return f"{record.target.account} / {zone}"


def _finished(record: TargetRecord) -> datetime | None:
    ends = [s.finished_at for s in record.steps.values() if s.finished_at is not None]
    return max(ends) if ends else None


def _started(record: TargetRecord) -> datetime | None:
    starts = [s.started_at for s in record.steps.values() if s.started_at is not None]
    return min(starts) if starts else None


def _target(record: TargetRecord, origin: datetime | None) -> dict[str, Any]:
    return {
        "id": record.target.id, "account": record.target.account,
        "region": record.target.region, "where": _where(record), "status": record.status,
        "outcome": outcome(record), "seconds": round(record.seconds, 3),
        "took": format_duration(record.seconds) if record.steps else "",
        "started": _offset(_started(record), origin),
        "finished": _offset(_finished(record), origin),
        "steps": len(record.steps),
    }


def _step_durations(record: RunRecord) -> dict[str, list[float]]:
    """Step id -> how long each target's run of it took (finished steps, not rollback)."""
    durations: dict[str, list[float]] = {step: [] for step in record.step_ids}
    for target in record.targets.values():
        for step in target.steps.values():
            if not step.rollback and step.finished_at is not None \
                    and step.status in ("succeeded", "failed"):
                durations.setdefault(step.id, []).append(round(step.seconds, 3))
    return {step: values for step, values in durations.items() if values}


def report_data(record: RunRecord) -> dict[str, Any]:
    origin = record.started_at
    end = _offset(record.finished_at, origin)
    targets = [_target(t, origin) for t in record.targets.values()]
    alarm = record.alarm
    return {
        "run_id": record.run_id, "playbook": record.playbook, "dry_run": record.dry_run,
        "started_at": iso(record.started_at), "finished_at": iso(record.finished_at),
        "duration": end, "took": format_duration(end) if end is not None else "",
        "summary": record.summary(),
        "notes": {
            "alarm": None if alarm is None else
            f"Stopped by alarm {alarm.alarm} ({alarm.account}/{alarm.region}) {alarm.reason}: "
            "no new targets were started.",
            "budget": None if record.budget is None else
            f"The failure budget ran out ({record.budget.failed} failed, "
            f"{record.budget.allowed} allowed): no new targets were started.",
            "interrupted": "The run was interrupted (Ctrl-C)." if record.interrupted else None,
        },
        "targets": targets,
        "step_durations": _step_durations(record),
        "retries": [[_offset(at, origin), kind] for at, kind in record.retried_at],
        "retry_totals": {"steps": record.step_retries, "api": record.api_retries,
                         "throttled": record.throttled},
    }
