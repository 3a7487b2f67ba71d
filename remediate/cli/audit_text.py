"""The dry-run audit and the questions `run` asks, as text for a terminal."""

from __future__ import annotations

from collections import Counter

from remediate.cli.plan_groups import group_lines, groups
from remediate.findings import FINDINGS
from remediate.language.durations import format_duration
from remediate.reporters.record import RunRecord
from remediate.reporters.wording import (
    permission_lines,
    plural,
    rescue_images,
    rescue_ssm,
    selection,
)


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
    """The headline, then the targets grouped by what they would get (refused and those
    needing a human first), then totals: findings, the forecast, permissions, and the
    headline again (it scrolls off at fleet size)."""
    headline = _headline(record)
    lines = [f"dry run of {record.playbook} ({record.run_id}): nothing was changed",
             *headline, ""]
    lines += group_lines(groups(record.targets.values()))
    lines.append("")
    lines += _rescue_images(record)
    findings = findings_summary(record)
    if findings:
        lines += ["findings:", *findings]
    lines += _forecast(record)
    lines += _permissions(record)
    lines += [f"{n.level}: {n.message}" for n in record.notices if n.level != "info"]
    return "\n".join([*lines, "", *headline])


def _headline(record: RunRecord) -> list[str]:
    summary = record.summary()
    line = f"{plural(summary['total'], 'target')}: {selection(summary, 'would be worked on')}"
    if record.forecast is not None:
        calls = sum(count for _, count in record.forecast.calls)
        line += (f"; forecast {format_duration(record.forecast.seconds)}, "
                 f"{plural(calls, 'mutating API call')}")
    elif record.estimate_seconds is not None:
        line += f"; estimated {format_duration(record.estimate_seconds)}"
    denied = len(record.denied())
    return [line + (f"; {plural(denied, 'API')} denied by IAM" if denied else "")]


def _forecast(record: RunRecord) -> list[str]:
    """The rehearsal's figures; without one, the plan's calls and the rate estimate."""
    forecast = record.forecast
    if forecast is not None:
        lines = [f"forecast: {format_duration(forecast.seconds)}, from rehearsing the run "
                 f"on a model of these {plural(forecast.targets, 'target')} (simulated time; "
                 "canary batches and API limits included)",
                 f"  assuming {forecast.assumptions}"]
        if forecast.calls:
            lines.append("  mutating API calls it would make (batched calls merged):")
            lines += _wrapped([f"{count} {api}" for api, count in forecast.calls])
        return lines
    lines = []
    calls = _api_counts(record)
    if calls:
        lines.append("API calls it would make (before merging into batches):")
        lines += _wrapped([f"{count} {api}" for api, count in sorted(calls.items())])
    if record.estimate_seconds is not None:
        lines.append(f"estimated duration, paced to the API limits: "
                     f"{format_duration(record.estimate_seconds)}")
    return lines


def _wrapped(items: list[str], width: int = 96) -> list[str]:
    """``items`` comma-separated on indented lines of at most ``width`` characters (an
    item is never split)."""
    lines: list[str] = []
    for item in items:
        if lines and len(lines[-1]) + len(item) + 3 <= width:  # ", " and a last ","
            lines[-1] += f", {item}"
        else:
            if lines:
                lines[-1] += ","
            lines.append(f"    {item}")
    return lines


def _rescue_images(record: RunRecord) -> list[str]:
    """The rescue image, and how rescue instances would reach SSM, per account and Region."""
    images, reach = rescue_images(record), rescue_ssm(record)
    return ([f"rescue image (rescue_image_id): {images}"] if images else []) + (
        [f"rescue instances reach SSM by: {reach}"] if reach else [])


def _permissions(record: RunRecord) -> list[str]:
    if not record.permissions:
        return []
    denied = len(record.denied())
    head = (f"IAM permissions (EC2 DryRun=True): {plural(denied, 'API')} denied"
            if denied else "IAM permissions (EC2 DryRun=True): nothing denied")
    urgent = [p for p in record.permissions if p.outcome != "allowed"]
    allowed: dict[str, list[str]] = {}
    for check in record.permissions:
        if check.outcome == "allowed":
            allowed.setdefault(f"{check.account}/{check.region}", []).append(check.iam_action)
    return [head, *(f"  {line}" for line in permission_lines(urgent)),
            *(f"  allowed in {where}: {', '.join(sorted(actions))}"
              for where, actions in sorted(allowed.items()))]


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

