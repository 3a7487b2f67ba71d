"""Markdown building blocks shared by the run summary and the dry-run audit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from remediate.findings import FINDINGS
from remediate.language.durations import format_duration
from remediate.reporters.record import RunRecord, TargetRecord, iso
from remediate.reporters.wording import plural


def cell(text: object) -> str:
    """Table-safe: one line, pipes escaped, never empty (an empty cell breaks some viewers)."""
    return " ".join(str(text).split()).replace("|", "\\|") or " "


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return [*lines, ""]


def where(record: TargetRecord) -> list[str]:
    """The first three cells of every target row."""
    t = record.target
    return [f"`{t.id}`", t.region, t.account]


def findings_text(record: TargetRecord) -> str:
    return "; ".join(f"{f.kind}: {f.detail}" for f in record.findings)


def hints(record: TargetRecord) -> str:
    """What the operator can do about the target's findings (each hint once)."""
    found = (FINDINGS.get(f.kind) for f in record.findings)
    return "; ".join(dict.fromkeys(kind.hint for kind in found if kind is not None and kind.hint))


def header(record: RunRecord, title: str) -> list[str]:
    line = f"Run `{record.run_id}`, started {iso(record.started_at) or 'unknown'}"
    if record.finished_at is not None:
        line += f", finished {iso(record.finished_at)}"
        if record.started_at is not None:
            took = (record.finished_at - record.started_at).total_seconds()
            line += f" ({format_duration(took)})"
    return [f"# {title}: {record.playbook}", "", line + ".", ""]


def run_notes(record: RunRecord) -> list[str]:
    """Retries, the failure budget, Ctrl-C and the executor's notices, as a bullet list."""
    notes = []
    if record.step_retries or record.api_retries:
        notes.append(f"Retries: {plural(record.step_retries, 'step retry', 'step retries')}, "
                     f"{plural(record.api_retries, 'API call retry', 'API call retries')} "
                     f"({record.throttled} throttled).")
    if record.budget is not None:
        notes.append(f"**The failure budget ran out** ({record.budget.failed} failed, "
                     f"{record.budget.allowed} allowed): no new targets were started.")
    if record.interrupted:
        notes.append("**The run was interrupted** (Ctrl-C).")
    notes += [f"{n.level}: {n.message}" for n in record.notices]
    return [*(f"- {note}" for note in notes), ""] if notes else []
