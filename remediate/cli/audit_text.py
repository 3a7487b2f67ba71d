"""The dry-run audit and the questions `run` asks, as text for a terminal."""

from __future__ import annotations

from collections import Counter
from typing import Any

from remediate.findings import FINDINGS
from remediate.language.durations import format_duration
from remediate.reporters.record import RunRecord, TargetRecord
from remediate.reporters.wording import permission_lines, plural, rescue_images, selection


def _findings(record: TargetRecord) -> str:
    return ", ".join(f.kind for f in record.findings) or "none"


def _target_lines(record: TargetRecord) -> list[str]:
    t = record.target
    head = f"{t.id} ({t.account}/{t.region})"
    lines = [f"{head}: {record.status}"]
    for finding in record.findings:
        severity = FINDINGS[finding.kind].severity if finding.kind in FINDINGS else "info"
        lines.append(f"    finding [{severity}] {finding.kind}: {finding.detail}")
    if record.refused:
        lines.append(f"    refused: {record.refused}")
    for step in record.planned:
        when = f" [only if {step.condition}]" if step.condition else ""
        if step.skip:
            lines.append(f"    skip {step.step} ({step.action}){when}: {step.skip}")
        else:
            calls = ", ".join(step.calls) or "no API call"
            lines.append(f"    {step.step} ({step.action}){when}: {calls}")
    return lines


def findings_summary(record: RunRecord) -> list[str]:
    counts: Counter[str] = Counter()
    for target in record.targets.values():
        counts.update({f.kind for f in target.findings})
    lines = []
    for kind, count in counts.most_common():
        info = FINDINGS.get(kind)
        hint = f" (hint: {info.hint})" if info is not None and info.hint else ""
        severity = info.severity if info is not None else "info"
        lines.append(f"  {count:5d} x {kind} [{severity}]{hint}")
    return lines


def _api_counts(record: RunRecord) -> Counter[str]:
    calls: Counter[str] = Counter()
    for target in record.targets.values():
        for step in target.planned:
            if not step.skip:
                calls.update(step.calls)
    return calls


def audit_text(record: RunRecord) -> str:
    """What each target would get and what it risks; then totals."""
    lines = [f"dry run of {record.playbook} ({record.run_id}): nothing was changed", ""]
    for target in record.targets.values():
        lines.extend(_target_lines(target))
    summary = record.summary()
    lines += ["", f"{plural(summary['total'], 'target')}: "
                  f"{selection(summary, 'would be worked on')}"]
    lines += _rescue_images(record)
    findings = findings_summary(record)
    if findings:
        lines += ["findings:", *findings]
    calls = _api_counts(record)
    if calls:
        lines.append("API calls it would make (before merging into batches):")
        lines += [f"  {count:6d} {api}" for api, count in sorted(calls.items())]
    if record.estimate_seconds is not None:
        lines.append(f"estimated duration, paced to the API limits: "
                     f"{format_duration(record.estimate_seconds)}")
    lines += _permissions(record)
    return "\n".join(lines)


def _rescue_images(record: RunRecord) -> list[str]:
    images = rescue_images(record)
    return [f"rescue image (rescue_image_id): {images}"] if images else []


def _permissions(record: RunRecord) -> list[str]:
    if not record.permissions:
        return []
    denied = len(record.denied())
    head = (f"IAM permissions (EC2 DryRun=True): {plural(denied, 'API')} denied"
            if denied else "IAM permissions (EC2 DryRun=True): nothing denied")
    return [head, *(f"  {line}" for line in permission_lines(record.permissions))]


def preflight_text(record: RunRecord) -> str:
    summary = record.summary()
    lines = [f"{record.playbook}: {plural(summary['total'], 'target')} selected, "
             f"{selection(summary, 'to work on')}", *_rescue_images(record)]
    for target in record.by_status("refused"):
        lines.append(f"  refused {target.target.id}: {target.refused}")
    findings = findings_summary(record)
    if findings:
        lines += ["findings:", *findings]
    if record.estimate_seconds is not None:
        lines.append(f"estimated duration: {format_duration(record.estimate_seconds)}")
    if record.denied():
        lines += _permissions(record)
    return "\n".join(lines)


def canary_text(batch: Any) -> str:
    lines = [f"canary batch: {batch.succeeded} succeeded, {batch.failed} failed; "
             f"{plural(batch.remaining, 'target')} to go"]
    for key, status in sorted(batch.statuses.items()):
        lines.append(f"  {key}: {status}")
    return "\n".join(lines)
