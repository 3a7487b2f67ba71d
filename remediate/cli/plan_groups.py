"""The dry-run audit at fleet size: targets that would get the same, said once.

Targets are grouped by what the audit says about them: their status, why they
would be refused, the kinds of their findings and every step's plan (the calls,
or why it would be skipped). A target's own ids (its id, its root volume's) read
``<id>`` in those texts, so 10,000 targets with the same plan make one group.
Refused groups come first, then those inspection failed on, then those that need a
human look (a step that cannot be planned, a finding to acknowledge), then the rest,
largest first. Each group shows its count and a few ids; ``--format json`` lists
every target.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from remediate.findings import FINDINGS
from remediate.reporters.record import PlannedStep, TargetRecord
from remediate.reporters.wording import plural

SHOWN_IDS: Final = 3
_NEEDS_A_LOOK: Final = frozenset({"ack", "block"})
"""Severities of a finding that a target worked on needs a human to weigh (an accepted
data loss, say)."""
_OWN_IDS: Final = ("root_volume_id",)
"""Facts naming a target's own resources, which its texts may quote."""


def generic(text: str, record: TargetRecord) -> str:
    """``text`` without the ids that make it one target's."""
    for own in (record.target.id, *(record.facts.get(fact) for fact in _OWN_IDS)):
        if isinstance(own, str) and own:
            text = text.replace(own, "<id>")
    return text


def _severity(kind: str) -> str:
    info = FINDINGS.get(kind)
    return info.severity if info is not None else "info"


@dataclass
class Group:
    status: str
    refused: str | None
    findings: tuple[str, ...]
    planned: tuple[PlannedStep, ...]
    first_refusal: str | None = None
    """The first target's own refusal: what a group of one shows, ids and all."""
    ids: list[str] = field(default_factory=list)

    @property
    def refusal(self) -> str:
        text = self.first_refusal if len(self.ids) == 1 else self.refused
        return text or "inspection failed"

    @property
    def needs_a_look(self) -> bool:
        return (self.status == "failed"
                or any(s.skip and s.skip.startswith("cannot plan") for s in self.planned)
                or any(_severity(k) in _NEEDS_A_LOOK for k in self.findings))

    @property
    def rank(self) -> tuple[int, int]:
        first = {"refused": 0, "failed": 1}.get(self.status, 2 if self.needs_a_look else 3)
        return first, -len(self.ids)


def _key(record: TargetRecord) -> tuple[object, ...]:
    steps = tuple((s.step, s.action, s.calls, generic(s.skip, record) if s.skip else None,
                   s.condition) for s in record.planned)
    refused = generic(record.refused, record) if record.refused else None
    return record.status, refused, tuple(sorted({f.kind for f in record.findings})), steps


def groups(records: Iterable[TargetRecord]) -> list[Group]:
    """Targets the audit would say the same about, in the order to read them."""
    found: dict[tuple[object, ...], Group] = {}
    for record in records:
        key = _key(record)
        group = found.get(key)
        if group is None:
            group = found[key] = Group(
                record.status, generic(record.refused, record) if record.refused else None,
                tuple(sorted({f.kind for f in record.findings})), tuple(record.planned),
                record.refused)
        group.ids.append(f"{record.target.id} ({record.target.account}/{record.target.region})"
                         if record.target.account != "default" else record.target.id)
    return sorted(found.values(), key=lambda g: g.rank)


def _ids(group: Group) -> str:
    shown = ", ".join(group.ids[:SHOWN_IDS])
    more = len(group.ids) - SHOWN_IDS
    return f"{shown}, and {more} more (--format json lists all)" if more > 0 else shown


def _head(group: Group) -> str:
    count = plural(len(group.ids), "target")
    if group.status == "refused":
        return f"{count} refused"
    if group.status == "failed":
        return f"{count} {'needs' if len(group.ids) == 1 else 'need'} a human"
    doing = "would be worked on" if group.status == "planned" else group.status
    look = ", needs a human look" if group.needs_a_look else ""
    return f"{count} {doing}{look}"


def _step_line(step: PlannedStep) -> str:
    when = f" [only if {step.condition}]" if step.condition else ""
    if step.skip:
        return f"skip {step.step} ({step.action}){when}: {step.skip}"
    calls = ", ".join(step.calls) or "no API call"
    return f"{step.step} ({step.action}){when}: {calls}"


def group_lines(all_groups: list[Group]) -> list[str]:
    """Each group: a head line with its findings and ids, then its steps (said once: a
    group with the same steps as one above points at it)."""
    lines: list[str] = []
    shown: dict[tuple[PlannedStep, ...], int] = {}
    for number, group in enumerate(all_groups, 1):
        found = f" (findings: {', '.join(group.findings)})" if group.findings else ""
        lines.append(f"[{number}] {_head(group)}{found}: {_ids(group)}")
        if group.status in ("refused", "failed"):
            lines.append(f"      {group.refusal}")
        if not group.planned:
            continue
        if group.planned in shown:
            lines.append(f"      steps as in [{shown[group.planned]}]")
            continue
        shown[group.planned] = number
        lines += [f"      {_step_line(step)}" for step in group.planned]
    return lines
