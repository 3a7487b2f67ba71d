"""The Markdown report: what an incident channel reads after a run.

Headline numbers first (each target counted once, as the console and the other
reports count it), then what needs a human, each group with what to do about it:
failed, rolled back, interrupted, refused (grouped by the finding that refused
them: each finding said once, with its hint) and never started; more than a few
targets that ended alike (the same failed step and AWS error code, the same
finding) are one line: how many, a few ids, one example. Then what is
worth knowing (informational findings), the fixed targets per account and Region,
and the skipped ones by reason. Tables stay narrow enough for a chat window
(:data:`~remediate.reporters.markdown_blocks.CHAT_WIDTH`): long texts go in lists,
which wrap, never in table cells. A dry run gets the audit of
:mod:`remediate.reporters.markdown_audit`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from statistics import median
from typing import TypeVar

from remediate.findings import FINDINGS, Finding
from remediate.language.durations import format_duration
from remediate.reporters.files import FileReport
from remediate.reporters.markdown_audit import audit
from remediate.reporters.markdown_blocks import header, id_list, run_notes, table
from remediate.reporters.record import RunRecord, TargetRecord
from remediate.reporters.wording import headline, outcome, plural

K = TypeVar("K")
# Up to this many targets that ended alike get a line each; more get one line together.
FEW = 5
# AWS's error codes (InvalidDocument, Client.InternalError), and resource ids in texts.
_CODE = re.compile(r"[A-Z][A-Za-z0-9]+(?:\.[A-Z][A-Za-z0-9]+)*")
_IDS = re.compile(r"\b(?:i|vol|snap|ami|ws|sir|r|subnet|eni)-[0-9a-f]{6,}\b")
# Each group needing a human: status, title, what it means and what to do.
_GROUPS = (
    ("failed", "Failed", "The fix failed; the target is as the failed step left it. "
     "**What to do:** read the error, fix its cause, then run the playbook again on these "
     "targets (`--target-ids`)."),
    ("rolled_back", "Rolled back", "The fix failed and the target was put back as it was, "
     "so it is still broken. **What to do:** read why, then try the next route (e.g. "
     "`playbooks/ec2-replace-root-volume.yaml`) on these targets."),
    ("interrupted", "Interrupted", "The run stopped before these were done. **What to do:** "
     "`remediate resume JOURNAL` continues them (a target rolled back to where it was starts "
     "again from its first step)."),
)


def _bullet(record: TargetRecord, text: str) -> str:
    t = record.target
    return f"- `{t.id}` ({t.region}, {t.account}): " + " ".join(text.split())


def _listed(records: list[TargetRecord], say: Callable[[TargetRecord], str],
            gist: Callable[[TargetRecord], str] | None = None) -> list[str]:
    """A bullet per target, or, for more than :data:`FEW` alike (same ``gist``), one
    bullet: how many, a few ids and one example (the JSON report lists them all)."""
    groups = _grouped(records, gist or (lambda r: ""))
    lines = []
    for key, members in sorted(groups.items(), key=lambda g: -len(g[1])):
        if len(members) <= FEW:
            lines += [_bullet(r, say(r)) for r in members]
            continue
        head = f"**{key}**, {len(members)} targets" if key else f"{len(members)} targets"
        example = _bullet(members[0], say(members[0])).removeprefix("- ")
        lines.append(f"- {head}: {id_list([r.target.id for r in members])}; for example "
                     f"{example}")
    return [*lines, ""]


def _gist(record: TargetRecord) -> str:
    """What targets that ended alike share: the step that failed and AWS's error code
    (``repair (rescue.repair): InvalidDocument``), else the outcome without resource ids."""
    step = record.failed_step
    code = ((step.error if step is not None else None) or "").split(":", 1)[0]
    if step is not None and _CODE.fullmatch(code):
        return f"{step.id} ({step.action}): {code}"
    return _IDS.sub("…", outcome(record))


def _grouped(records: Iterable[TargetRecord],
             key: Callable[[TargetRecord], K]) -> dict[K, list[TargetRecord]]:
    groups: dict[K, list[TargetRecord]] = {}
    for r in records:
        groups.setdefault(key(r), []).append(r)
    return groups


def _blocking(record: TargetRecord) -> list[Finding]:
    """The findings that refused the target (named in its refusal)."""
    why = record.refused or ""
    return [f for f in record.findings if f.kind in FINDINGS
            and FINDINGS[f.kind].severity != "info" and f.kind in why]


def _refused(record: RunRecord) -> list[str]:
    refused = record.by_status("refused")
    if not refused:
        return []
    lines = [f"### Refused ({len(refused)})", "",
             "Not touched, or stopped before the step named.", ""]
    groups = _grouped(refused, lambda r: next((f.kind for f in _blocking(r)), None))
    for kind, members in sorted(groups.items(), key=lambda g: (g[0] is None, -len(g[1]))):
        if kind is None:
            lines += ["Other reasons:", "", *_listed(members, outcome)]
            continue
        known = FINDINGS[kind]
        lines.append(f"**{kind}** ({known.severity}, {plural(len(members), 'target')}): "
                     f"{known.summary}." + (f" **What to do:** {known.hint}" if known.hint
                                            else ""))
        lines += ["", *_listed(members, lambda r: "; ".join(f.detail for f in _blocking(r)))]
    return lines


def needs_a_human(record: RunRecord) -> list[str]:
    lines: list[str] = []
    for status, title, blurb in _GROUPS:
        group = record.by_status(status)
        if group:
            lines += [f"### {title} ({len(group)})", "", blurb, "",
                      *_listed(group, outcome, _gist)]
    lines += _refused(record)
    pending = record.by_status("pending")
    if pending:
        lines += [f"### Not started ({len(pending)})", "",
                  "The run ended before these were reached. **What to do:** "
                  "`remediate resume JOURNAL`.", "", *_listed(pending, outcome)]
    count = sum(1 for r in record.targets.values()
                if r.status in ("failed", "rolled_back", "interrupted", "refused", "pending"))
    if not lines:
        return ["## Needs a human", "", "Nothing: every target was fixed or skipped as planned.",
                ""]
    return [f"## Needs a human ({count})", "", *lines]


def worth_knowing(record: RunRecord) -> list[str]:
    """Informational findings of the targets worked on (a refusal's finding is said in
    *Refused*, a skipped target's reason in *Skipped*): each kind once, with how many
    targets and which."""
    kinds: dict[str, list[str]] = {}
    for r in record.targets.values():
        if r.status in ("refused", "skipped"):  # said in their own sections
            continue
        for finding in r.findings:
            known = FINDINGS.get(finding.kind)
            if known is not None and known.severity == "info":
                kinds.setdefault(finding.kind, []).append(r.target.id)
    if not kinds:
        return []
    lines = ["## Worth knowing", ""]
    for kind, ids in sorted(kinds.items(), key=lambda k: (-len(k[1]), k[0])):
        lines.append(f"- **{kind}** ({plural(len(ids), 'target')}): {FINDINGS[kind].summary}: "
                     f"{id_list(ids)}")
    return [*lines, ""]


def fixed(record: RunRecord) -> list[str]:
    """Per account and Region: how many, the median and the slowest time."""
    done = record.by_status("succeeded")
    if not done:
        return []
    rows = []
    places = _grouped(done, lambda r: f"{r.target.account}/{r.target.region}")
    for where, members in sorted(places.items()):
        slowest = max(members, key=lambda r: r.seconds)
        rows.append([where, len(members), format_duration(median(r.seconds for r in members)),
                     f"{format_duration(slowest.seconds)} (`{slowest.target.id}`)"])
    return [f"## Fixed ({len(done)})", "",
            *table(["Account/Region", "Fixed", "Median time", "Slowest"], rows)]


def skipped(record: RunRecord) -> list[str]:
    left = record.by_status("skipped")
    if not left:
        return []
    lines = [f"## Skipped ({len(left)})", ""]
    lines += [f"- {reason} ({len(members)}): {id_list([r.target.id for r in members])}"
              for reason, members in _grouped(left, outcome).items()]
    return [*lines, ""]


def run_summary(record: RunRecord) -> str:
    lines = [f"# remediate run: {record.playbook}", "",
             f"**{headline(record.summary())}.**", ""]
    lines += header(record)
    lines += run_notes(record)
    lines += needs_a_human(record)
    lines += worth_knowing(record)
    lines += fixed(record)
    lines += skipped(record)
    return "\n".join(lines).rstrip() + "\n"


class MarkdownReport(FileReport):
    def render(self, record: RunRecord) -> str:
        return audit(record) if record.dry_run else run_summary(record)
