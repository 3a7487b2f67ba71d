"""Markdown building blocks shared by the run summary and the dry-run audit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from remediate.language.durations import format_duration
from remediate.reporters.record import RunRecord, iso
from remediate.reporters.wording import plural


def cell(text: object) -> str:
    """Table-safe: one line, pipes escaped, never empty (an empty cell breaks some viewers)."""
    return " ".join(str(text).split()).replace("|", "\\|") or " "


# Wider tables wrap into an unreadable mess in a chat window (Slack, Teams).
CHAT_WIDTH = 100


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return [*lines, ""]


def id_list(ids: Sequence[str], limit: int = 10) -> str:
    """```i-1`, `i-2` and 3 more``: a few ids of a group (the JSON report has them all)."""
    shown = ", ".join(f"`{i}`" for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def header(record: RunRecord) -> list[str]:
    """When the run started and finished, and how long it took."""
    line = f"Run `{record.run_id}`, started {iso(record.started_at) or 'unknown'}"
    if record.finished_at is not None:
        line += f", finished {iso(record.finished_at)}"
        if record.started_at is not None:
            took = (record.finished_at - record.started_at).total_seconds()
            line += f" ({format_duration(took)})"
    return [line + ".", ""]


def run_notes(record: RunRecord) -> list[str]:
    """Retries, the failure budget, an alarm, Ctrl-C and the executor's notices, as a
    bullet list."""
    notes = []
    if record.step_retries or record.api_retries:
        notes.append(f"Retries: {plural(record.step_retries, 'step retry', 'step retries')}, "
                     f"{plural(record.api_retries, 'API call retry', 'API call retries')} "
                     f"({record.throttled} throttled).")
    if record.budget is not None:
        notes.append(f"**The failure budget ran out** ({record.budget.failed} failed, "
                     f"{record.budget.allowed} allowed): no new targets were started.")
    if record.alarm is not None:
        notes.append(f"**Stopped by alarm {record.alarm.alarm}** ({record.alarm.account}/"
                     f"{record.alarm.region}, {record.alarm.reason}): no new targets were "
                     "started; those in flight finished.")
    if record.interrupted:
        notes.append("**The run was interrupted** (Ctrl-C).")
    notes += [f"{n.level}: {n.message}" for n in record.notices]
    return [*(f"- {note}" for note in notes), ""] if notes else []
