"""``when`` conditions as Choice rules.

A condition that reads only ``params`` is decided now (the parameters are bound
at export); the rest become Choice rules with the local semantics: ``equals``
and ``in`` need the value present (and of the operand's type), ``not_equals``
and ``not_in`` hold when it is absent.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from remediate.export import asl
from remediate.export.asl import Rule
from remediate.export.errors import NotExportable
from remediate.export.templates import json_path
from remediate.language.model import Condition

Decided = Rule | bool


def _leaf(cond: Condition, facts: Collection[str], where: str) -> Decided:
    at = json_path(cond.ref, facts, where)
    try:
        if cond.op == "exists":
            return asl.present(at, bool(cond.operand))
        if cond.op == "equals":
            return asl.equals(at, cond.operand)
        if cond.op == "not_equals":
            return asl.negate(asl.equals(at, cond.operand))
        values = list(cond.operand or [])
        if cond.op == "in":
            return asl.one_of(at, values) if values else False
        if cond.op == "not_in":
            return asl.negate(asl.one_of(at, values)) if values else True
    except ValueError as exc:
        raise NotExportable(where, f"when: {exc}") from exc
    raise NotExportable(where, f"when: unknown operator {cond.op!r}")


def rule(cond: Condition, params: Mapping[str, Any], facts: Collection[str],
         where: str) -> Decided:
    """The Choice rule for ``cond``, or True/False when it is decided at export."""
    if cond.op in ("all", "any"):
        children = [rule(c, params, facts, where) for c in cond.children]
        decisive = cond.op == "any"  # True decides an `any`, False an `all`
        if any(c is decisive for c in children):
            return decisive
        left = [c for c in children if not isinstance(c, bool)]
        if not left:
            return not decisive
        return asl.any_of(*left) if decisive else asl.all_of(*left)
    if cond.op == "not":
        inner = rule(cond.children[0], params, facts, where)
        return (not inner) if isinstance(inner, bool) else asl.negate(inner)
    if cond.ref.split(".", 1)[0] == "params":
        return cond.evaluate({"params": params})
    return _leaf(cond, facts, where)
