"""The scorecard as text (the terminal), JSON, Markdown and SARIF (CI code scanning).

Every format lists the same findings, each with its fix, and the same per-scope
counts; only the shape differs. SARIF is in :mod:`remediate.readiness.sarif`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Final

from remediate.readiness.model import Scope, Scorecard
from remediate.readiness.sarif import sarif


def _where(scope: Scope) -> str:
    return f"{scope.account}/{scope.region}"


def _rows(card: Scorecard, scope: Scope) -> Iterator[tuple[str, str, int, int]]:
    """(rule id, name, resources judged, failed) of each rule judged in ``scope``."""
    for rule in card.rules:
        judged = card.judged.get((scope, rule.id))
        if judged is not None:
            yield rule.id, rule.name, judged, card.failed(scope, rule.id)


def verdict(card: Scorecard) -> str:
    if card.ready:
        return f"READY: every check passed in {len(card.scopes)} account/Region scope(s)"
    failing = {(f.account, f.region) for f in card.findings}
    return (f"NOT READY: {len(card.findings)} finding(s) in {len(failing)} of "
            f"{len(card.scopes)} account/Region scope(s)")


def text(card: Scorecard) -> str:
    lines = []
    for scope in card.scopes:
        lines.append(f"{_where(scope)}:")
        for rule_id, name, judged, failed in _rows(card, scope):
            mark = "FAIL" if failed else "ok  "
            lines.append(f"  {mark} {rule_id}: {name} ({judged - failed} of {judged} passed)")
    if card.findings:
        lines.append("")
        lines.append("findings:")
    for finding in card.findings:
        lines.append(f"  [{finding.rule}] {finding.account}/{finding.region} "
                     f"{finding.resource}: {finding.message}")
        lines.append(f"      fix: {finding.fix}")
    lines.append("")
    lines.append(verdict(card))
    return "\n".join(lines) + "\n"


def as_json(card: Scorecard) -> str:
    return json.dumps({
        "ready": card.ready,
        "rules": [asdict(rule) for rule in card.rules],
        "scopes": [{"account": s.account, "region": s.region,
                    "rules": {rule_id: {"judged": judged, "failed": failed}
                              for rule_id, _, judged, failed in _rows(card, s)}}
                   for s in card.scopes],
        "findings": [asdict(finding) for finding in card.findings],
    }, indent=2) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(card: Scorecard) -> str:
    lines = ["# remediate readiness", "", f"**{verdict(card)}**", "",
             "| account/Region | check | passed | failed |", "|---|---|---|---|"]
    for scope in card.scopes:
        lines.extend(f"| {_where(scope)} | `{rule_id}` {_cell(name)} | {judged - failed} | "
                     f"{failed} |" for rule_id, name, judged, failed in _rows(card, scope))
    if card.findings:
        lines += ["", "## Findings", "", "| account/Region | check | resource | problem | fix |",
                  "|---|---|---|---|---|"]
        lines.extend(f"| {f.account}/{f.region} | `{f.rule}` | `{f.resource}` | "
                     f"{_cell(f.message)} | {_cell(f.fix)} |" for f in card.findings)
    return "\n".join(lines) + "\n"


FORMATS: Final[dict[str, Callable[[Scorecard], str]]] = {
    "text": text, "json": as_json, "md": markdown, "sarif": sarif}
