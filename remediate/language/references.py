"""Check what templates and conditions refer to, before anything runs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from remediate.kinds import KINDS
from remediate.language.problems import Path, Problems
from remediate.language.schema import did_you_mean
from remediate.language.template import TemplateError, has_template, references

RUN_FIELDS = ("id", "dry_run")


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

    def __init__(self, params: Sequence[str], kind: str | None,
                 steps: Mapping[str, Sequence[str]]) -> None:
        self.params = list(params)
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
