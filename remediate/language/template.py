"""Safe templating: ``${{ path.to.value }}`` and nothing else.

A template is a dotted path looked up in plain data (``params``, ``target``,
``steps.<id>.outputs``, ``steps.<id>.status``, ``run``): no expressions, no
calls, no attribute access on objects, so YAML can never run code. A value that
is a single template keeps the looked-up value's type; a template inside a longer
string is rendered as text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# What is inside cannot hold "}}": "${{ a }}-${{ b }}" is two templates, even where the
# whole string must match (a value that is one template keeps its type).
TEMPLATE_RE = re.compile(r"\$\{\{((?:(?!\}\}).)*)\}\}")
REFERENCE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)*")
NAMESPACES = ("params", "target", "steps", "run")


class TemplateError(ValueError):
    pass


def has_template(text: str) -> bool:
    return "${{" in text


def references(text: str) -> list[str]:
    """The dotted paths a string refers to; TemplateError on bad syntax."""
    refs: list[str] = []
    for match in TEMPLATE_RE.finditer(text):
        ref = match.group(1).strip()
        if not REFERENCE_RE.fullmatch(ref):
            raise TemplateError(
                f"expected a dotted path like params.name inside ${{{{ }}}}, found {ref!r}"
            )
        if ref.split(".", 1)[0] not in NAMESPACES:
            raise TemplateError(
                f"unknown namespace {ref.split('.', 1)[0]!r} in ${{{{ {ref} }}}}; "
                f"expected one of {', '.join(NAMESPACES)}"
            )
        refs.append(ref)
    rest = TEMPLATE_RE.sub("", text)
    if "${{" in rest:
        raise TemplateError("unclosed ${{: expected ${{ path }}")
    return refs


def lookup(ref: str, scope: Mapping[str, Any]) -> Any:
    value: Any = scope
    for part in ref.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            raise TemplateError(f"${{{{ {ref} }}}} has no value ({part!r} is not set)")
    return value


def render(value: Any, scope: Mapping[str, Any]) -> Any:
    """Render templates in ``value`` (recursively through lists and mappings)."""
    if isinstance(value, str) and has_template(value):
        whole = TEMPLATE_RE.fullmatch(value.strip())
        if whole:
            return lookup(whole.group(1).strip(), scope)
        return TEMPLATE_RE.sub(lambda m: str(lookup(m.group(1).strip(), scope)), value)
    if isinstance(value, list):
        return [render(item, scope) for item in value]
    if isinstance(value, Mapping):
        return {key: render(item, scope) for key, item in value.items()}
    return value


def as_references(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameter values keyed by how templates name them: ``{"params.x": 3}``."""
    return {f"params.{name}": value for name, value in params.items()}


def substitute(value: Any, known: Mapping[str, Any]) -> Any:
    """``value`` with the references ``known`` holds (``{"params.x": 3}``) put in, as
    :func:`render` would, and every other template left as it is.

    Binding parameters before the run (``plan``, ``run``, ``export``) renders what is
    known now; the rest (facts, step outputs) is rendered per target at run time.
    """
    if isinstance(value, str) and has_template(value):
        whole = TEMPLATE_RE.fullmatch(value.strip())
        if whole and whole.group(1).strip() in known:
            return known[whole.group(1).strip()]

        def one(match: re.Match[str]) -> str:
            ref = match.group(1).strip()
            return str(known[ref]) if ref in known else match.group(0)

        return TEMPLATE_RE.sub(one, value)
    if isinstance(value, list):
        return [substitute(item, known) for item in value]
    if isinstance(value, Mapping):
        return {key: substitute(item, known) for key, item in value.items()}
    return value
