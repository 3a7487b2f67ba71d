"""The basics of IAM's policy grammar, for tests: the shapes AWS refuses a policy for.

Version, a Statement list, and per statement: an alphanumeric unique Sid, Effect
Allow or Deny, Action a service:Operation or a non-empty list of them, Resource
``*`` or ARNs, Condition operator -> key -> a string or a non-empty list of them.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any, Final

_ACTION: Final = re.compile(r"[a-z0-9-]+:[A-Za-z0-9*]+")
_RESOURCE: Final = re.compile(r"\*|arn:aws:[a-z0-9-]+:[a-z0-9*-]*:[0-9*]*:\S+")
_SID: Final = re.compile(r"[A-Za-z0-9]+")
_OPERATOR: Final = re.compile(
    r"(ForAllValues:|ForAnyValue:)?(String(Not)?Equals(IgnoreCase)?|String(Not)?Like|"
    r"Numeric(Not)?Equals|Numeric(Less|Greater)Than(Equals)?|Date(Not)?Equals|"
    r"Date(Less|Greater)Than(Equals)?|Bool|BinaryEquals|(Not)?IpAddress|Arn(Not)?Equals|"
    r"Arn(Not)?Like)(IfExists)?|Null")
_KEYS: Final = {"Sid", "Effect", "Action", "Resource", "Condition"}


def problems(policy: Any) -> list[str]:
    """What makes ``policy`` no IAM policy document; [] if nothing."""
    if not isinstance(policy, dict) or set(policy) != {"Version", "Statement"}:
        return ["a policy is an object with exactly Version and Statement"]
    found = [] if policy["Version"] == "2012-10-17" else [
        f"Version is {policy['Version']!r}, not '2012-10-17'"]
    statements = policy["Statement"]
    if not isinstance(statements, list) or not statements:
        return [*found, "Statement is not a non-empty list"]
    sids = [s.get("Sid") for s in statements if isinstance(s, dict) and "Sid" in s]
    found += [f"Sid {sid!r} is used twice" for sid in sorted(set(sids), key=str)
              if sids.count(sid) > 1]
    for index, statement in enumerate(statements):
        found += [f"Statement[{index}]: {problem}" for problem in _statement(statement)]
    return found


def _statement(statement: Any) -> list[str]:
    if not isinstance(statement, dict):
        return ["not an object"]
    found = [f"unknown element {key}" for key in sorted(set(statement) - _KEYS)]
    found += [f"{key} is missing" for key in ("Effect", "Action", "Resource")
              if key not in statement]
    if "Sid" in statement and not (isinstance(statement["Sid"], str)
                                   and _SID.fullmatch(statement["Sid"])):
        found.append(f"Sid {statement['Sid']!r} is not alphanumeric")
    if statement.get("Effect", "Allow") not in ("Allow", "Deny"):
        found.append(f"Effect {statement['Effect']!r} is not Allow or Deny")
    found += _names("Action", statement.get("Action", ["x:Y"]), _ACTION)
    found += _names("Resource", statement.get("Resource", "*"), _RESOURCE)
    found += _condition(statement.get("Condition", {}))
    return found


def _names(element: str, value: Any, pattern: re.Pattern[str]) -> list[str]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        return [f"{element} is not a string or a non-empty list"]
    found = [f"{element} {name!r} is malformed" for name in names
             if not (isinstance(name, str) and pattern.fullmatch(name))]
    found += [f"{element} {name!r} is listed twice" for name in sorted(set(names), key=str)
              if names.count(name) > 1]
    return found


def _condition(condition: Any) -> list[str]:
    if not isinstance(condition, dict):
        return ["Condition is not an object"]
    found = []
    for operator, keys in condition.items():
        if not _OPERATOR.fullmatch(operator):
            found.append(f"Condition operator {operator!r} is unknown")
        if not isinstance(keys, dict) or not keys:
            found.append(f"Condition {operator} is not a non-empty object")
            continue
        for key, value in keys.items():
            values = [value] if isinstance(value, str) else value
            if not (isinstance(values, list) and values
                    and all(isinstance(v, str) for v in values)):
                found.append(f"Condition {operator} {key} is not a string or a non-empty "
                             "list of strings")
    return found


def parliament_findings(policy: Any) -> list[tuple[str, str, Any]]:
    """(severity, issue, detail) of every finding parliament (PyPI ``parliament``, with its
    community auditors: privilege escalation, sensitive access...) reports on ``policy``."""
    import json
    import warnings
    from pathlib import Path

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # parliament imports pkg_resources
        import parliament

        overrides = Path(parliament.__file__).parent / "community_auditors"
        parliament.override_config(overrides / "config_override.yaml")
        analyzed = parliament.analyze_policy_string(json.dumps(policy),
                                                    include_community_auditors=True)
        found = [parliament.enhance_finding(f) for f in analyzed.findings]
    return [(f.severity, f.issue, f.detail) for f in found]


def sar_resource_types(action: str) -> frozenset[str] | None:
    """The resource types the Service Authorization Reference lists for ``action`` (as
    parliament ships it), each as its ARN names it (``instance``, ``workspace``); None when
    it does not know the action."""
    service, _, operation = action.partition(":")
    arns = {r["resource"]: r["arn"] for s in _services(service) for r in s["resources"]}
    for privilege in (p for s in _services(service) for p in s["privileges"]):
        if privilege["privilege"] == operation:
            names = (r["resource_type"].rstrip("*") for r in privilege["resource_types"])
            return frozenset(arns[name].split(":", 5)[5].split("/", 1)[0]
                             for name in names if name)
    return None


@cache
def _services(prefix: str) -> tuple[Any, ...]:
    import json
    from pathlib import Path

    import parliament

    path = Path(parliament.__file__).parent / "iam_definition.json"
    return tuple(s for s in json.loads(path.read_text()) if s["prefix"] == prefix)
