"""Run every check in every account and Region that has targets, into one scorecard.

Scopes run in parallel (a few threads: each is a handful of paged Describe calls),
the checks of one scope in :data:`~remediate.readiness.checks.CHECKS` order. A check
whose call fails (access denied, an outage) fails each of its rules not judged yet
for that scope, saying what failed: a readiness run that could not look is not ready.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from remediate.actions.contract import Target
from remediate.clock import Clock
from remediate.readiness.check import Check, Settings, Verdict
from remediate.readiness.checks import CHECKS
from remediate.readiness.model import Finding, Scope, Scorecard
from remediate.readiness.region import CheckFailed, Region

WORKERS = 8


def _judge(region: Region, check: Check, settings: Settings) -> list[Verdict]:
    verdicts: list[Verdict] = []
    try:
        verdicts.extend(check.run(region, settings))
    except CheckFailed as exc:
        judged = {v.rule.id for v in verdicts}
        verdicts.extend(
            Verdict(rule, 1, [region.fail(
                rule, f"{region.scope.account}/{region.scope.region}",
                f"could not check: {exc}", exc.fix)])
            for rule in check.rules if rule.id not in judged)
    return verdicts


def _scope(region: Region, checks: Sequence[Check], settings: Settings) -> list[Verdict]:
    return [v for check in checks for v in _judge(region, check, settings)]


def run(targets: Sequence[Target], clients: Any, clock: Clock, settings: Settings,
        checks: Sequence[Check] = CHECKS) -> Scorecard:
    """The scorecard of ``targets`` (discovered EC2 instances), scope by scope."""
    ids: dict[Scope, list[str]] = {}
    for target in targets:
        ids.setdefault(Scope(target.account, target.region), []).append(target.id)
    accounts: set[str] = set()
    regions = []
    for scope, found in ids.items():  # targets come sorted by (account, Region, id)
        regions.append(Region(scope, tuple(found), clients, clock,
                              first_of_account=scope.account not in accounts))
        accounts.add(scope.account)
    card = Scorecard(tuple(rule for check in checks for rule in check.rules),
                     [region.scope for region in regions])
    with ThreadPoolExecutor(max_workers=max(1, min(WORKERS, len(regions)))) as pool:
        results = list(pool.map(lambda r: _scope(r, checks, settings), regions))
    for region, verdicts in zip(regions, results, strict=True):
        for verdict in verdicts:
            card.judge(region.scope, verdict.rule, verdict.judged, verdict.failures)
    card.findings.sort(key=_order(card))
    return card


def _order(card: Scorecard) -> Any:
    rank = {rule.id: index for index, rule in enumerate(card.rules)}

    def key(finding: Finding) -> tuple[str, str, int, str]:
        return (finding.account, finding.region, rank[finding.rule], finding.resource)

    return key
