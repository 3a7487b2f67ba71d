"""The scorecard as SARIF 2.1.0, for CI code-scanning views.

A minimal valid log (OASIS SARIF 2.1.0, https://docs.oasis-open.org/sarif/sarif/v2.1.0/):
``version`` and ``runs``; each run's ``tool.driver`` with its ``name`` and ``rules``
(one per readiness rule, ``id``, ``shortDescription``, ``help``); one ``result`` per
finding with ``ruleId``, ``ruleIndex``, ``level`` ``error`` and a ``message`` saying
the problem and its fix. An AWS resource has no file: its location is a *logical*
location (``name``: the id or ARN, ``fullyQualifiedName``: ACCOUNT/REGION/id).
"""

from __future__ import annotations

import json
from typing import Any, Final

from remediate import __version__
from remediate.readiness.model import Scorecard

VERSION: Final = "2.1.0"
SCHEMA: Final = "https://json.schemastore.org/sarif-2.1.0.json"


def sarif(card: Scorecard) -> str:
    index = {rule.id: position for position, rule in enumerate(card.rules)}
    rules = [{"id": rule.id, "name": rule.id,
              "shortDescription": {"text": rule.name},
              "fullDescription": {"text": rule.why},
              "help": {"text": rule.why},
              "defaultConfiguration": {"level": "error"}} for rule in card.rules]
    results: list[dict[str, Any]] = [{
        "ruleId": f.rule,
        "ruleIndex": index[f.rule],
        "level": "error",
        "message": {"text": f"{f.message}. Fix: {f.fix}"},
        "locations": [{"logicalLocations": [{
            "name": f.resource,
            "fullyQualifiedName": f"{f.account}/{f.region}/{f.resource}",
            "kind": "resource"}]}],
    } for f in card.findings]
    log = {"$schema": SCHEMA, "version": VERSION, "runs": [{
        "tool": {"driver": {"name": "remediate readiness", "version": __version__,
                            "rules": rules}},
        "results": results}]}
    return json.dumps(log, indent=2) + "\n"
