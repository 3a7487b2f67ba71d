"""IAM's decision on one authorization, for the sandbox's policy enforcement.

AWS evaluates an identity-based policy for each resource a request authorizes
(IAM User Guide, "Policy evaluation logic",
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
an explicit Deny wins; else an Allow is needed; else the request is implicitly
denied. A statement applies when its Action matches (case-insensitive, ``*`` and
``?`` wildcards), its Resource matches the resource's ARN (``*`` for actions
without resource-level permissions, which only ``"Resource": "*"`` matches), and
every condition holds ("Condition element": operators and keys are ANDed, the
values of one key ORed; a key missing from the request fails every operator but
the negated ones, ``Null`` and ``...IfExists``; ``ForAllValues`` holds for a key
with no values). Condition key names are case-insensitive, values are not.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final, Literal

Decision = Literal["allowed", "denied", "not allowed"]


@dataclass(frozen=True)
class Authorization:
    """One resource a request authorizes for ``action``, and the request context for it:
    condition key (any case) -> its values (the resource's tags among them)."""

    action: str
    resource: str
    context: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def values(self, key: str) -> tuple[str, ...] | None:
        """The key's values in the context, or None when the request has no such key."""
        wanted = key.lower()
        for name, values in self.context.items():
            if name.lower() == wanted:
                return values
        return None


def decide(policy: Mapping[str, Any], authorization: Authorization) -> Decision:
    """``allowed``; ``denied`` (an explicit Deny applies); ``not allowed`` (no Allow does)."""
    effects = {statement.get("Effect") for statement in _statements(policy)
               if _applies(statement, authorization)}
    if "Deny" in effects:
        return "denied"
    return "allowed" if "Allow" in effects else "not allowed"


def _statements(policy: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = policy.get("Statement", [])
    return [statements] if isinstance(statements, Mapping) else list(statements)


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _applies(statement: Mapping[str, Any], authorization: Authorization) -> bool:
    unsupported = {"NotAction", "NotResource", "Principal", "NotPrincipal"} & set(statement)
    if unsupported:
        raise ValueError(f"the sandbox does not evaluate {', '.join(sorted(unsupported))}")
    return (any(_wildcard(p, ignore_case=True).fullmatch(authorization.action)
                for p in _listed(statement.get("Action", [])))
            and any(_wildcard(p).fullmatch(authorization.resource)
                    for p in _listed(statement.get("Resource", [])))
            and all(_holds(operator, key, _listed(values), authorization)
                    for operator, keys in statement.get("Condition", {}).items()
                    for key, values in keys.items()))


@lru_cache(maxsize=4096)
def _wildcard(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    """``*`` any run of characters, ``?`` one; IAM's ``${*}``, ``${?}``, ``${$}`` the
    characters themselves."""
    parts = re.split(r"(\$\{[*?$]\}|\*|\?)", pattern)
    regex = "".join(".*" if part == "*" else "." if part == "?"
                    else re.escape(part[2]) if part in ("${*}", "${?}", "${$}")
                    else re.escape(part) for part in parts)
    return re.compile(regex, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _literal(value: str) -> str:
    return re.sub(r"\$\{([*?$])\}", r"\1", value)


def _string_equals(found: str, wanted: str) -> bool:
    return found == _literal(wanted)


def _string_like(found: str, wanted: str) -> bool:
    return bool(_wildcard(wanted).fullmatch(found))


def _bool(found: str, wanted: str) -> bool:
    return found.lower() == wanted.lower()


# Operator -> (does one value of the request match one value of the policy, negated?).
_MATCHERS: Final[Mapping[str, tuple[Callable[[str, str], bool], bool]]] = {
    "StringEquals": (_string_equals, False),
    "StringNotEquals": (_string_equals, True),
    "StringLike": (_string_like, False),
    "StringNotLike": (_string_like, True),
    "ArnEquals": (_string_equals, False),
    "ArnLike": (_string_like, False),
    "ArnNotEquals": (_string_equals, True),
    "ArnNotLike": (_string_like, True),
    "Bool": (_bool, False),
}


def _holds(operator: str, key: str, wanted: Sequence[str],
           authorization: Authorization) -> bool:
    found = authorization.values(key)
    if operator == "Null":
        (null,) = wanted
        return (found is None or not found) == (null.lower() == "true")
    qualifier, _, base = operator.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    if base not in _MATCHERS:
        raise ValueError(f"the sandbox does not evaluate the condition operator {operator}")
    match, negated = _MATCHERS[base]
    if not found:
        if if_exists or qualifier == "ForAllValues":
            return True
        return negated and qualifier != "ForAnyValue"

    def one(value: str) -> bool:
        hit = any(match(value, w) for w in wanted)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(one(value) for value in found)
    return any(one(value) for value in found)
