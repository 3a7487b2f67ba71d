"""The Markdown report: what a manager reads after a run.

What was fixed, what failed and why, and what needs a human: failed, rolled
back, interrupted, refused (with their findings and what to do about them) and
never started. A dry run gets the audit of :mod:`remediate.reporters.markdown_audit`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from remediate.language.durations import format_duration
from remediate.reporters.files import FileReport
from remediate.reporters.markdown_audit import audit
from remediate.reporters.markdown_blocks import (
    findings_text,
    header,
    hints,
    run_notes,
    table,
    where,
)
from remediate.reporters.record import RunRecord, TargetRecord
from remediate.reporters.wording import outcome, plural

Column = tuple[str, Callable[[TargetRecord], str]]
_REFUSED_COLUMNS: Sequence[Column] = (("Findings", findings_text), ("What to do", hints))


def _section(title: str, blurb: str, records: list[TargetRecord],
             columns: Sequence[Column] = ()) -> list[str]:
    if not records:
        return []
    headers = ["Target", "Region", "Account", "What happened", *(name for name, _ in columns)]
    rows = [[*where(r), outcome(r), *(value(r) for _, value in columns)] for r in records]
    return [f"### {title} ({len(records)})", "", blurb, "", *table(headers, rows)]


def needs_a_human(record: RunRecord) -> list[str]:
    sections = [
        *_section("Failed", "The fix failed; the target is as the failed step left it.",
                  record.by_status("failed")),
        *_section("Rolled back", "The fix failed and the target was put back as it was "
                  "(so it is still broken).", record.by_status("rolled_back")),
        *_section("Interrupted", "The run stopped while these were mid-way: check them, or "
                  "`remediate resume`.", record.by_status("interrupted")),
        *_section("Refused", "A finding blocks the playbook, or needs `--accept`: not touched, "
                  "or stopped before the step named.",
                  record.by_status("refused"), _REFUSED_COLUMNS),
        *_section("Not started", "The run ended before these were reached.",
                  record.by_status("pending")),
    ]
    return ["## Needs a human", "",
            *(sections or ["Nothing: every target was fixed or skipped as planned.", ""])]


def run_summary(record: RunRecord) -> str:
    s = record.summary()
    lines = header(record, "remediate run")
    lines += [f"**{plural(s['total'], 'target')}: {s['succeeded']} fixed, {s['failed']} failed, "
              f"{s['rolled_back']} rolled back, {s['skipped']} skipped** ({s['refused']} refused, "
              f"{s['interrupted']} interrupted, {s['not_run']} not started).", ""]
    lines += run_notes(record)
    lines += needs_a_human(record)
    fixed = record.by_status("succeeded")
    if fixed:
        lines += [f"## Fixed ({len(fixed)})", ""]
        lines += table(["Target", "Region", "Account", "Steps", "Took"],
                       [[*where(r), len(r.steps), format_duration(r.seconds)] for r in fixed])
    skipped = record.by_status("skipped")
    if skipped:
        lines += [f"## Skipped ({len(skipped)})", ""]
        lines += table(["Target", "Region", "Account", "Why"],
                       [[*where(r), outcome(r)] for r in skipped])
    return "\n".join(lines).rstrip() + "\n"


class MarkdownReport(FileReport):
    def render(self, record: RunRecord) -> str:
        return audit(record) if record.dry_run else run_summary(record)
