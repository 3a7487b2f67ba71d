"""From what was read to a verdict per target: its class, why, and its routes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from remediate.actions.contract import Target
from remediate.triage.classes import CLASSES, instance_class, workspace_class
from remediate.triage.reading import Reading
from remediate.triage.routes import RouteVerdict, routes_for


@dataclass(frozen=True)
class Verdict:
    target: Target
    triage_class: str
    why: str
    routes: tuple[RouteVerdict, ...] = ()

    @property
    def broken(self) -> bool:
        return CLASSES[self.triage_class].broken


def judge(reading: Reading) -> Verdict:
    """The verdict on one target. A call that failed makes it ``unread``: a class guessed
    from half the evidence would be trusted at 3 a.m."""
    target = reading.target
    if reading.errors:
        return Verdict(target, "unread", "; ".join(reading.errors))
    if target.kind == "workspace":
        name, why = workspace_class(reading.state, reading.connection)
    else:
        name, why = instance_class(reading.state, reading.status, reading.serial,
                                   reading.screen)
    routes = (tuple(routes_for(target.kind, name, reading.facts))
              if CLASSES[name].broken and name != "unread" else ())
    return Verdict(target, name, why, routes)


def counts(verdicts: Iterable[Verdict]) -> dict[str, int]:
    """Targets per class, in :data:`CLASSES` order, the empty ones left out."""
    found = Counter(v.triage_class for v in verdicts)
    return {name: found[name] for name in CLASSES if found[name]}
