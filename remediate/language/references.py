"""Check what templates and conditions refer to, and that templates are only where
something renders them, before anything runs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from remediate.kinds import KINDS
from remediate.language.problems import Path, Problems
from remediate.language.schema import describe, did_you_mean
from remediate.language.template import TemplateError, has_template, references

RUN_FIELDS = ("id", "dry_run")
# A parameter's declared type -> the Python types its values have.
PARAM_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "list": (list,),
}
TYPE_NAMES = {"string": "a string", "integer": "an integer", "number": "a number",
              "boolean": "a boolean", "list": "a list"}


def of_type(value: Any, kind: str) -> bool:
    """Whether ``value`` is a value of parameter type ``kind`` (true is no integer)."""
    types = PARAM_TYPES[kind]
    return isinstance(value, types) and (bool in types or not isinstance(value, bool))


def check_literal(value: Any, path: Path, problems: Problems, where: str, hint: str) -> None:
    """Templates (keys included) in ``value``, which nothing renders: they would be used
    as written, e.g. a tag filter looking for the text ``${{ params.incident }}``."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and has_template(key):
                problems.add((*path, key), f"templates are not rendered in {where}, found "
                                           f"{key!r}", hint, at_key=True)
            check_literal(item, (*path, key), problems, where, hint)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_literal(item, (*path, i), problems, where, hint)
    elif isinstance(value, str) and has_template(value):
        problems.add(path, f"templates are not rendered in {where}, found {describe(value)}",
                     hint)


def template_strings(value: Any, path: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(value, str):
        if has_template(value):
            yield path, value
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from template_strings(item, (*path, i))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from template_strings(item, (*path, key))


class Scope:
    """What a step may refer to: parameters, facts, and the steps before it."""

    def __init__(self, params: Mapping[str, Any], kind: str | None,
                 steps: Mapping[str, Sequence[str]]) -> None:
        self.params = list(params)  # the playbook's `parameters`, as written
        self.declared = {name: spec for name, spec in params.items()
                         if isinstance(spec, Mapping) and spec.get("type") in PARAM_TYPES}
        self.facts = list(KINDS[kind].facts) if kind is not None and kind in KINDS else None
        self.steps = steps  # step id -> its action's output names

    def check(self, ref: str, path: Path, problems: Problems) -> None:
        parts = ref.split(".")
        head = parts[0]
        if head == "params":
            self._one_of(parts, self.params, "parameter", path, problems,
                         "declare it under `parameters:`")
        elif head == "target":
            if self.facts is not None:
                self._one_of(parts, self.facts, "target fact", path, problems,
                             "facts are listed by `remediate list-actions --facts`")
        elif head == "run":
            self._one_of(parts, list(RUN_FIELDS), "run field", path, problems, "")
        elif head == "steps":
            self._step(parts, ref, path, problems)

    def _one_of(self, parts: list[str], known: list[str], what: str, path: Path,
                problems: Problems, hint: str) -> None:
        name = parts[1]
        if name not in known:
            problems.add(path, f"undefined {what} {name!r} in {'.'.join(parts)}",
                         did_you_mean(name, known) or hint)
        elif len(parts) > 2 and what != "target fact":
            problems.add(path, f"{'.'.join(parts[:2])} has no fields; found "
                               f"{'.'.join(parts)}")

    def _step(self, parts: list[str], ref: str, path: Path, problems: Problems) -> None:
        step_id = parts[1]
        if step_id not in self.steps:
            problems.add(path, f"{ref} refers to step {step_id!r}, which does not run "
                               "before this one",
                         did_you_mean(step_id, list(self.steps))
                         or "a step can only use the results of the steps before it")
            return
        if len(parts) == 3 and parts[2] == "status":
            return
        if len(parts) == 4 and parts[2] == "outputs":
            outputs = list(self.steps[step_id])
            if parts[3] not in outputs:
                listed = ", ".join(outputs) if outputs else "none"
                problems.add(path, f"step {step_id!r} has no output {parts[3]!r}",
                             did_you_mean(parts[3], outputs) or f"its outputs: {listed}")
            return
        problems.add(path, f"expected steps.{step_id}.status or steps.{step_id}.outputs.<name>, "
                           f"found {ref}")

    def check_templates(self, value: Any, path: Path, problems: Problems) -> None:
        for where, text in template_strings(value, path):
            try:
                refs = references(text)
            except TemplateError as exc:
                problems.add(where, str(exc))
                continue
            for ref in refs:
                self.check(ref, where, problems)

    def check_condition(self, condition: Any, path: Path, problems: Problems) -> None:
        if not isinstance(condition, Mapping):
            return
        for op in ("all", "any"):
            if isinstance(condition.get(op), list):
                for i, child in enumerate(condition[op]):
                    self.check_condition(child, (*path, op, i), problems)
        if "not" in condition:
            self.check_condition(condition["not"], (*path, "not"), problems)
        ref = condition.get("value")
        if isinstance(ref, str) and "." in ref:
            self.check(ref, (*path, "value"), problems)
        for op in ("equals", "not_equals", "in", "not_in"):
            if op in condition:
                check_literal(condition[op], (*path, op), problems, "conditions",
                              "a condition compares with the value as written: test the "
                              "reference itself, e.g. {value: params.mode, equals: fast}")
                if isinstance(ref, str) and ref.startswith("params."):
                    self._comparable(ref, op, condition[op], (*path, op), problems)

    def _comparable(self, ref: str, op: str, operand: Any, path: Path,
                    problems: Problems) -> None:
        """Operands a parameter's value could equal: of its type (and among its choices),
        or the condition is decided before the run, whatever the value."""
        spec = self.declared.get(ref.split(".")[1])
        if spec is None:
            return
        kind, choices = spec["type"], spec.get("choices")
        listed = op in ("in", "not_in") and isinstance(operand, list)
        for at, value in (enumerate(operand) if listed else ((None, operand),)):
            where = path if at is None else (*path, at)
            if value is None:
                continue
            if not of_type(value, kind):
                problems.add(where, f"expected {TYPE_NAMES[kind]} to compare {ref} with (its "
                                    f"type), found {describe(value)}",
                             "a value of another type never equals the parameter")
            elif isinstance(choices, list) and value not in choices:
                problems.add(where, f"expected one of the choices of {ref} "
                                    f"({', '.join(map(str, choices))}), found "
                                    f"{describe(value)}",
                             "the parameter never takes another value")
