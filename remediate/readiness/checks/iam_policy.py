"""The operator's role is allowed what the playbook needs (IAM's policy simulator).

The policy a run needs is the one ``remediate iam-policy PLAYBOOK`` prints
(:func:`remediate.permissions.policy_document`). Each of its Allow statements is put
to IAM SimulatePrincipalPolicy for the operator: its actions, on its resources (the
statement's own ARN patterns: a pattern matches itself), in a request context that
meets its conditions (the tag values it names, the keys it wants present; those it
wants absent left out). Anything not ``allowed`` is missing. IAM is global, so each
account is judged once, in its first Region.

Simplified: one representative request per statement (a policy that allows only some
of the tag values the playbook selects by passes), and AWS's own simulator is asked
with wildcard ARNs, which it matches like any other.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from remediate.readiness.check import Check, Settings, Verdict
from remediate.readiness.model import Rule
from remediate.readiness.principal import operator
from remediate.readiness.region import Region

GRANTED = Rule("iam-policy-granted", "The operator's role has the playbook's IAM policy",
               "A run stops at the first call its role may not make, possibly with a root "
               "volume detached: grant the whole policy before the incident.")
SHOWN: Final = 5  # denied (action, resource) pairs named in a finding


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value or []]


def context_entries(condition: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """ContextEntries under which ``condition`` holds (IAM condition operators)."""
    values: dict[str, tuple[list[str], str]] = {}
    present: set[str] = set()
    for operator_name, keys in condition.items():
        base = operator_name.split(":")[-1].removesuffix("IfExists")
        multi = ":" in operator_name  # ForAllValues: / ForAnyValue:
        for key, wanted in keys.items():
            listed = _listed(wanted)
            if base == "Null":
                if listed and listed[0].lower() == "false":
                    present.add(key)
                continue
            kind = "boolean" if base == "Bool" else "stringList" if multi else "string"
            values[key] = (listed if multi else listed[:1], kind)
    for key in sorted(present - set(values)):
        values[key] = (["present"], "string")
    return [{"ContextKeyName": key, "ContextKeyValues": given, "ContextKeyType": kind}
            for key, (given, kind) in values.items()]


def _denied(region: Region, principal: str, statement: Mapping[str, Any]) -> list[str]:
    resources = [r for r in _listed(statement.get("Resource")) if r != "*"]
    request: dict[str, Any] = {"PolicySourceArn": principal,
                               "ActionNames": _listed(statement.get("Action")),
                               "ContextEntries": context_entries(statement.get("Condition", {}))}
    if resources:
        request["ResourceArns"] = resources
    denied: list[str] = []
    for page in region.pages("iam", "SimulatePrincipalPolicy", **request):
        denied.extend(f"{r['EvalActionName']} on {r.get('EvalResourceName', '*')} "
                      f"({r['EvalDecision']})"
                      for r in page.get("EvaluationResults", [])
                      if r.get("EvalDecision") != "allowed")
    return denied


def run(region: Region, settings: Settings) -> Iterator[Verdict]:
    if settings.needed_policy is None or not region.first_of_account:
        return
    principal, _ = operator(region, settings.operator_arn)
    statements = [s for s in settings.needed_policy.get("Statement", [])
                  if s.get("Effect") == "Allow"]
    denied = [d for s in statements for d in _denied(region, principal, s)]
    failures = [] if not denied else [region.fail(
        GRANTED, principal,
        f"{principal} is not allowed {len(denied)} of what {settings.playbook} needs: "
        + ", ".join(denied[:SHOWN]) + (", ..." if len(denied) > SHOWN else ""),
        f"attach the policy `remediate iam-policy {settings.playbook}` prints to it (aws iam "
        "put-role-policy --policy-document file://policy.json ...)")]
    yield Verdict(GRANTED, 1, failures)


CHECK = Check((GRANTED,), run)
