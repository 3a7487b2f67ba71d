"""How reports phrase a target's outcome, its steps and its plan, in one place.

JUnit, Markdown and the terminal say the same things about a target; sharing the
phrases keeps them from drifting apart.
"""

from __future__ import annotations

from remediate.findings import Finding
from remediate.language.durations import format_duration
from remediate.reporters.record import PlannedStep, StepRecord, TargetRecord, severity


def plural(count: int, word: str, many: str = "") -> str:
    return f"{count} {word}" if count == 1 else f"{count} {many or word + 's'}"


def step_line(step: StepRecord) -> str:
    """``stop (ec2.stop): failed after 3 attempts in 2m05s: IncorrectState: ...``"""
    kind = "rollback " if step.rollback else ""
    text = f"{kind}{step.id} ({step.action}): {step.status}"
    if step.attempts > 1:
        text += f" after {plural(step.attempts, 'attempt')}"
    if step.finished_at is not None and step.status != "skipped":
        text += f" in {format_duration(step.seconds)}"
    return f"{text}: {step.error}" if step.error else text


def plan_line(plan: PlannedStep) -> str:
    head = f"{plan.step} ({plan.action})"
    if plan.skip:
        return f"{head}: would skip: {plan.skip}"
    calls = ", ".join(plan.calls) if plan.calls else "no API calls"
    return f"{head}: would run: {calls}"


def finding_line(finding: Finding) -> str:
    return f"{finding.kind} ({severity(finding)}): {finding.detail}"


def outcome(record: TargetRecord) -> str:
    """Why the target ended as it did, in one line ("" when nothing needs saying)."""
    status = record.status
    step = record.failed_step
    if status == "refused":
        return record.refused or record.error or "refused"
    if status == "failed":
        if step is not None and step.status == "failed":
            return step_line(step)
        return record.error or "failed"
    if status == "interrupted":
        where = f" during {step.id} ({step.action})" if step is not None else ""
        return f"interrupted{where}; resume the run or check the target"
    if status == "rolled_back":
        text = f"rolled back: {record.rollback_reason or record.error or 'a step failed'}"
        broken = [s for s in record.steps.values() if s.rollback and s.status != "succeeded"]
        if broken:
            text += "; rollback incomplete: " + "; ".join(step_line(s) for s in broken)
        return text
    if status == "skipped":
        return record.error or "skipped"
    if status == "pending":
        return "not started"
    return record.error or ""
