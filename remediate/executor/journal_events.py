"""What a resumed run tells its reporters first: the run and its targets as journaled.

Reporters build their model from events (the executor never prints); a resumed
run's events alone would describe only this process's part of the run: targets
fixed before a crash would read "not started". So, right after ``RunStarted``, a
resumed run publishes ``RunResumed`` and one ``TargetResumed`` per target with
its journaled status, facts (and the findings they give), and the steps of its
latest pass, and every report describes the whole run.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from remediate.executor.context import RunContext
from remediate.executor.events import JournaledStep, RunResumed, TargetResumed
from remediate.journal import FINISHED_STATUSES, StepRecord, TargetRecord


def publish_journaled(rc: RunContext, records: Iterable[TargetRecord]) -> None:
    records = list(records)
    started = _moment(rc.journal.run(rc.run_id).started_at)
    finished = sum(1 for r in records if r.finished)
    rc.bus.publish(RunResumed(rc.run_id, started or rc.now(), finished))
    for record in records:
        facts = dict(record.facts or {})
        findings = rc.policy.judge(record.target.kind, facts)[0] if record.facts else ()
        status = record.status if record.status in FINISHED_STATUSES | {"interrupted"} \
            else None
        rc.bus.publish(TargetResumed(
            record.target, record.phase, status, record.error, facts, findings,
            tuple(_step(rc, s) for s in record.last_steps)))


def _step(rc: RunContext, step: StepRecord) -> JournaledStep:
    try:
        action = rc.playbook.step(step.step_id).action
    except KeyError:  # a step of the playbook the run started with, since edited away
        action = "?"
    return JournaledStep(step.step_id, action, step.status, step.attempts,
                         _moment(step.started_at), _moment(step.finished_at), step.error,
                         step.rollback)


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
