"""``${{ }}`` references in an exported playbook: params now, the rest at run time.

Parameter values are bound when the playbook is compiled (the definition is
"this playbook with these parameters"), so ``${{ params.x }}`` is replaced by
its value and the action's schema checks the result, as a local run would.
Every other reference becomes a JSONPath into the iteration's state:

======================================  =====================================
``${{ target.root_volume_id }}``        ``$.target.root_volume_id``
``${{ steps.attach.outputs.device }}``  ``$.steps.attach.outputs.device``
``${{ steps.reboot.status }}``          ``$.steps.reboot.status``
``${{ run.id }}``                       ``$.run.id``
======================================  =====================================

A string mixing text and references becomes ``States.Format``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from remediate.actions.contract import Action
from remediate.export import asl
from remediate.export.errors import NotExportable
from remediate.language.problems import Problems, render_path
from remediate.language.template import TEMPLATE_RE, as_references, has_template, substitute


def json_path(ref: str, facts: Collection[str], where: str) -> str:
    """The JSONPath in the iteration's state a reference reads."""
    parts = ref.split(".")
    if parts[0] == "target":
        if len(parts) != 2 or parts[1] not in facts:
            raise NotExportable(where, f"${{{{ {ref} }}}}: Step Functions iterations learn only "
                                       f"the facts {', '.join(facts)}")
        return f"$.{ref}"
    if parts[0] in ("steps", "run"):
        return f"$.{ref}"
    raise NotExportable(where, f"${{{{ {ref} }}}} cannot be read at run time")


def _runtime(value: Any, facts: Collection[str], where: str) -> Any:
    if isinstance(value, str) and has_template(value):
        whole = TEMPLATE_RE.fullmatch(value.strip())
        if whole:
            return asl.path(json_path(whole.group(1).strip(), facts, where))
        parts: list[Any] = []
        position = 0
        for match in TEMPLATE_RE.finditer(value):
            parts.append(value[position:match.start()])
            parts.append(asl.path(json_path(match.group(1).strip(), facts, where)))
            position = match.end()
        parts.append(value[position:])
        return asl.fmt(*[p for p in parts if p != ""])
    if isinstance(value, list):
        return [_runtime(item, facts, where) for item in value]
    if isinstance(value, Mapping):
        return {key: _runtime(item, facts, where) for key, item in value.items()}
    return value


def bind(action: Action, step_id: str, raw: Mapping[str, Any], params: Mapping[str, Any],
         facts: Collection[str]) -> dict[str, Any]:
    """The step's ``with`` checked by the action's schema (defaults applied, params bound),
    run-time references as :class:`~remediate.export.asl.Ref`."""
    where = f"step {step_id} ({action.name})"
    problems = Problems()
    checked = action.params.check(substitute(dict(raw), as_references(params)), ("with",),
                                  problems)
    if problems:
        raise NotExportable(where, "; ".join(f"{render_path(p.path)}: {p.message}"
                                             for p in problems.items))
    bound: dict[str, Any] = _runtime(dict(checked), facts, where)
    return bound
