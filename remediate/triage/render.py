"""Triage's report: grouped text (the default), JSON (every target), Markdown.

Targets of a class with the same reason and the same routes are one group, shown once
with its count and a few ids, so 10,000 boot-looping instances read as a few lines;
JSON lists every target.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from remediate.reporters.wording import plural
from remediate.triage.classes import CLASSES, TAG_KEY
from remediate.triage.verdicts import Verdict, counts

SHOWN_IDS: Final = 5
KIND_NAMES: Final = {"ec2-instance": "instance", "workspace": "WorkSpace"}


@dataclass
class Group:
    triage_class: str
    kind: str
    why: str
    routes: str
    ids: list[str] = field(default_factory=list)

    def shown_ids(self) -> str:
        more = len(self.ids) - SHOWN_IDS
        return ", ".join(self.ids[:SHOWN_IDS]) + (f" and {more} more" if more > 0 else "")


def _routes(verdict: Verdict) -> str:
    return "; ".join(f"{r.route}: {r.text()}" for r in verdict.routes)


def groups(verdicts: Sequence[Verdict]) -> list[Group]:
    """Groups in class order, then largest first."""
    found: dict[tuple[str, str, str, str], Group] = {}
    for v in verdicts:
        key = (v.triage_class, v.target.kind, v.why, _routes(v))
        found.setdefault(key, Group(*key)).ids.append(v.target.id)
    order = list(CLASSES)
    return sorted(found.values(), key=lambda g: (order.index(g.triage_class), g.kind,
                                                 -len(g.ids), g.why))


def _headline(verdicts: Sequence[Verdict]) -> str:
    kinds = [v.target.kind for v in verdicts]
    parts = [plural(kinds.count(kind), name) for kind, name in KIND_NAMES.items()
             if kind in kinds]
    broken = sum(v.broken for v in verdicts)
    return (f"triage of {plural(len(verdicts), 'target')} ({', '.join(parts)}): "
            f"{broken} need a repair")


def text(verdicts: Sequence[Verdict], tagged: bool = False) -> str:
    lines = [_headline(verdicts)]
    totals = counts(verdicts)
    last = None
    for group in groups(verdicts):
        if group.triage_class != last:
            last = group.triage_class
            lines += ["", f"{last} ({totals[last]}): {CLASSES[last].title}"]
        noun = KIND_NAMES[group.kind]
        lines.append(f"  {plural(len(group.ids), noun)}: {group.shown_ids()}")
        lines.append(f"    why: {group.why}")
        if group.routes:
            lines.append(f"    routes: {group.routes}")
    if tagged:
        lines += ["", f"tagged every target {TAG_KEY}=<class>"]
    return "\n".join(lines)


def as_json(verdicts: Sequence[Verdict]) -> str:
    document: dict[str, Any] = {
        "classes": counts(verdicts),
        "targets": [{
            "id": v.target.id, "kind": v.target.kind, "region": v.target.region,
            "account": v.target.account, "class": v.triage_class, "why": v.why,
            "routes": [{"route": r.route, "playbook": r.playbook, "verdict": r.verdict,
                        "reasons": list(r.reasons)} for r in v.routes],
        } for v in verdicts],
    }
    return json.dumps(document, indent=2)


def _cell(value: str) -> str:
    return value.replace("|", "\\|")


def markdown(verdicts: Sequence[Verdict]) -> str:
    headline = _headline(verdicts)
    lines = [f"# {headline[0].upper()}{headline[1:]}", ""]
    totals = counts(verdicts)
    lines += ["| class | targets |", "|---|---:|",
              *(f"| {name} | {count} |" for name, count in totals.items())]
    last = None
    for group in groups(verdicts):
        if group.triage_class != last:
            last = group.triage_class
            lines += ["", f"## {last}: {CLASSES[last].title}", "",
                      "| targets | why | routes |", "|---|---|---|"]
        ids = f"{len(group.ids)}: {group.shown_ids()}"
        lines.append(f"| {_cell(ids)} | {_cell(group.why)} | {_cell(group.routes or '-')} |")
    return "\n".join(lines)


FORMATS: Final = {"json": as_json, "markdown": markdown}
