"""How reports phrase a target's outcome, its steps and its plan, in one place.

JUnit, Markdown and the terminal say the same things about a target; sharing the
phrases keeps them from drifting apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from remediate.actions.manageability import Manageability
from remediate.executor.events import PermissionChecked
from remediate.findings import Finding
from remediate.language.durations import format_duration
from remediate.reporters.record import PlannedStep, RunRecord, StepRecord, TargetRecord, severity


def plural(count: int, word: str, many: str = "") -> str:
    return f"{count} {word}" if count == 1 else f"{count} {many or word + 's'}"


def selection(summary: dict[str, int], working: str) -> str:
    """What becomes of a dry run's targets (``summary`` is RunRecord.summary()): ``7 to
    work on, 5 refused, 1 skipped``, ``working`` being the first phrase's words."""
    text = f"{summary['not_run']} {working}, {summary['refused']} refused"
    return text + (f", {summary['skipped']} skipped" if summary["skipped"] else "")


# How reports and the console name each summary key, in the order they say them.
OUTCOME_WORDS = (("succeeded", "fixed"), ("failed", "failed"), ("rolled_back", "rolled back"),
                 ("interrupted", "interrupted"), ("refused", "refused"),
                 ("skipped", "skipped"), ("not_run", "not started"))


def outcomes(summary: dict[str, int], fixed: str = "fixed") -> str:
    """``1 fixed, 1 failed, 2 interrupted (2 rolled back), 1 refused``: each target once
    (``summary`` as RunRecord.summary()); zero counts are left out, but ``fixed`` (the
    console says "succeeded", as its other lines do) is always said. The console's bars
    and the Markdown report say a run's outcome in these words and this order."""
    parts = []
    for key, word in OUTCOME_WORDS:
        count = summary.get(key, 0)
        if count or key == "succeeded":
            parts.append(f"{count} {fixed if key == 'succeeded' else word}")
        if key == "interrupted" and summary.get("interrupted_rolled_back"):
            parts[-1] += f" ({summary['interrupted_rolled_back']} rolled back)"
    return ", ".join(parts)


def headline(summary: dict[str, int]) -> str:
    """``5 targets: 1 fixed, 1 failed, ...`` (see :func:`outcomes`)."""
    return f"{plural(summary['total'], 'target')}: {outcomes(summary)}"


def rescue_images(record: RunRecord) -> str:
    """``ami-0abc in default/us-east-1, ami-0def in default/eu-west-1``: the rescue AMI
    inspection found in each account and Region (fact rescue_image_id; "": none)."""
    return _per_region(record, "rescue_image_id", str)


def rescue_ssm(record: RunRecord) -> str:
    """``Default Host Management Configuration (role R) in default/us-east-1, none in
    default/eu-west-1``: how rescue instances would reach SSM in each account and Region
    inspection read it for (fact rescue_ssm; "": not read)."""
    return _per_region(record, "rescue_ssm", _reach)


def _reach(fact: Any) -> str:
    found = Manageability.from_fact(fact)
    if found is None:
        return str(fact)
    return {"instance-profile": f"instance profile {found.detail}",
            "dhmc": f"Default Host Management Configuration (role {found.detail})",
            "none": "none (refused)", "unknown": "could not be read"}[found.way]


def _per_region(record: RunRecord, fact: str, shown: Callable[[Any], str]) -> str:
    """``VALUE in ACCOUNT/REGION, ...``: ``fact`` of the first target of each account and
    Region that has it (the facts shared per account and Region)."""
    found: dict[str, str] = {}
    for target in record.targets.values():
        value = target.facts.get(fact)
        if value:
            found.setdefault(f"{target.target.account}/{target.target.region}", shown(value))
    return ", ".join(f"{value} in {where}" for where, value in sorted(found.items()))


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
    if plan.condition:
        head += f" [only if {plan.condition}]"
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
        if record.error:  # the executor says where it stopped and what resume will do
            return record.error
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


def permission_line(check: PermissionChecked) -> str:
    """``denied ec2:StopInstances in default/us-east-1: UnauthorizedOperation: ...``"""
    return (f"{check.outcome} {check.iam_action} in {check.account}/{check.region}: "
            f"{check.detail}")


def by_urgency(checks: list[PermissionChecked]) -> list[PermissionChecked]:
    """Denied first (what the operator must fix before the real run), then unchecked."""
    order = {"denied": 0, "unchecked": 1, "allowed": 2}
    return sorted(checks, key=lambda c: (order[c.outcome], c.account, c.region, c.api))


def permission_lines(checks: list[PermissionChecked]) -> list[str]:
    return [permission_line(c) for c in by_urgency(checks)]
