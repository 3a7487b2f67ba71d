"""What a readiness check says: rules, findings, and the scorecard of a whole run.

A *rule* is one thing that must hold before an incident (the rescue image resolves,
snapshots are fresh...); a check module declares the rules it judges. A *finding* is
one rule failing for one resource of one account and Region, with the fix: the
scorecard lists only failures, and counts per (account, Region) how many resources
each rule passed, so a clean account shows what was looked at, not just silence.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["pass", "fail"]


@dataclass(frozen=True)
class Rule:
    """One readiness rule: its id (SARIF ``ruleId``), a short name and why it matters."""

    id: str
    name: str
    why: str


@dataclass(frozen=True)
class Finding:
    """``rule`` fails for ``resource`` (an id or ARN) in ``account``/``region``."""

    rule: str
    account: str
    region: str
    resource: str
    message: str
    fix: str


@dataclass(frozen=True)
class Scope:
    """One account and Region of a readiness run."""

    account: str
    region: str


@dataclass
class Scorecard:
    """Every finding of a run, and how many resources each rule judged per scope."""

    rules: tuple[Rule, ...]
    scopes: list[Scope] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    judged: Counter[tuple[Scope, str]] = field(default_factory=Counter)

    def judge(self, scope: Scope, rule: Rule, resources: int,
              failures: list[Finding]) -> None:
        """Record that ``rule`` judged ``resources`` in ``scope``; ``failures`` failed."""
        self.judged[(scope, rule.id)] += resources
        self.findings.extend(failures)

    def failed(self, scope: Scope, rule: str) -> int:
        return sum(1 for f in self.findings
                   if f.rule == rule and (f.account, f.region) == (scope.account, scope.region))

    @property
    def ready(self) -> bool:
        return not self.findings
