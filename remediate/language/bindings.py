"""Parameter values judged by every step that uses them, before any AWS call.

A parameter reaches an action through ``${{ params.x }}`` in a step's ``with``:
as the whole value (it keeps its type) or inside a longer string (as text).
Either way the action's schema can only judge it once the value is known:
``validate`` knows the defaults, ``plan``, ``run`` and ``export`` the values
bound from ``--param`` too. Here the known values are put into each step's
``with`` (:func:`~remediate.language.template.substitute`, as the step will
render them) and the result goes through the action's own schema and rules
(:meth:`~remediate.actions.contract.Action.check_params`), so a value no target
could take fails the command in one line, naming the parameter, the step and
what is expected, instead of failing every target at that step.

Only what the values change is reported: a problem the step has with its
templates unrendered is ``validate``'s to report. A step whose ``when`` reads
only parameters and is false for these values never runs (``snapshot_id``
unset skips the step that restores from one), so its values are not judged;
one whose ``when`` depends on the target or an earlier step may run, so they are.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from remediate.actions import registry
from remediate.actions.contract import Action
from remediate.language.model import Condition, Playbook, Step
from remediate.language.problems import Path, Problem, render_path
from remediate.language.references import template_strings
from remediate.language.template import (
    TEMPLATE_RE,
    TemplateError,
    as_references,
    references,
    substitute,
)

PARAMS: Final = "params."


@dataclass(frozen=True)
class Misfit:
    """Parameter values (``names``) a step cannot take."""

    names: tuple[str, ...]
    steps: tuple[Step, ...]  # each step the same value misfits the same way
    where: str  # under the step: "with.times"
    message: str  # expected and found

    def describe(self) -> str:
        steps = ", ".join(f"{step.id} ({step.action})" for step in self.steps)
        return (f"step{'s' if len(self.steps) > 1 else ''} {steps} {self.where}: "
                f"{self.message}")


def params_in(value: Any) -> list[str]:
    """The parameters ``value`` (a ``with``, or part of one) refers to, in order."""
    names: list[str] = []
    for _, text in template_strings(value, ()):
        try:
            refs = references(text)
        except TemplateError:
            continue
        names += [ref[len(PARAMS):] for ref in refs
                  if ref.startswith(PARAMS) and ref[len(PARAMS):] not in names]
    return names


def decide(condition: Condition, values: Mapping[str, Any]) -> bool | None:
    """``condition`` evaluated on parameter ``values`` alone; None when it reads something
    else (a fact, a step's result, a parameter whose value is not known)."""
    if condition.op in ("all", "any", "not"):
        results = [decide(child, values) for child in condition.children]
        if condition.op == "not":
            return None if results[0] is None else not results[0]
        deciding = condition.op == "any"  # any: one True decides; all: one False does
        if deciding in results:
            return deciding
        return None if None in results else not deciding
    name = condition.ref[len(PARAMS):] if condition.ref.startswith(PARAMS) else None
    if name is None or name not in values:
        return None
    return condition.evaluate({"params": dict(values)})


def misfits(playbook: Playbook, values: Mapping[str, Any], folder: str) -> list[Misfit]:
    """What parameter ``values`` (name -> value; a parameter left out is not known yet)
    do to the steps and rollback steps of ``playbook`` (whose scripts are in ``folder``)."""
    found: dict[tuple[tuple[str, ...], str, str], list[Step]] = {}
    for step in (*playbook.steps, *playbook.rollback):
        action = registry.get(step.action)
        used = [name for name in params_in(step.params) if name in values]
        if action is None or not used:
            continue
        if step.when is not None and decide(step.when, values) is False:
            continue
        for names, where, message in _judge(step, action, used, values, folder):
            found.setdefault((names, where, message), []).append(step)
    return [Misfit(names, tuple(steps), where, message)
            for (names, where, message), steps in found.items()]


def _judge(step: Step, action: Action, used: list[str], values: Mapping[str, Any],
           folder: str) -> Iterator[tuple[tuple[str, ...], str, str]]:
    """(parameters, where, what is wrong) for each problem the values give ``step``."""
    raw = dict(step.params)
    before = {(p.path, p.message) for p in action.check_params(raw, ("with",), folder)[1]}
    for path, name in _unset_inside(raw, values, ("with",)):
        yield (name,), render_path(path), ("the parameter is unset, but the step puts it "
                                           "inside a string")
    bound = substitute(raw, as_references(values))
    for problem in action.check_params(bound, ("with",), folder)[1]:
        if (problem.path, problem.message) not in before:
            yield _names_at(raw, problem, used), render_path(problem.path), problem.message


def _unset_inside(value: Any, values: Mapping[str, Any], path: Path) -> Iterator[
        tuple[Path, str]]:
    """Where a parameter without a value would be rendered as text ("None")."""
    for where, text in template_strings(value, path):
        if TEMPLATE_RE.fullmatch(text.strip()):
            continue
        for name in params_in(text):
            if name in values and values[name] is None:
                yield where, name


def _names_at(raw: Mapping[str, Any], problem: Problem, used: list[str]) -> tuple[str, ...]:
    """The parameters behind ``problem``: those written where it points (or under it);
    all the step uses when it points at the whole ``with`` (a rule across fields)."""
    value: Any = raw
    for part in problem.path[1:]:
        inside = part in value if isinstance(value, Mapping) else (
            isinstance(value, list) and isinstance(part, int) and part < len(value))
        if not inside:
            break
        value = value[part]
    names = [name for name in params_in(value) if name in used]
    return tuple(names or used)
