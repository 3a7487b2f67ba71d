"""Dry runs: what each step would do to each target, from the facts pre-flight found.

Steps are walked in order with the real ``when`` and params; outputs of earlier
steps are unknown, so a template that needs one stays unrendered (the plan says
so) and a step planned to run counts as ``succeeded`` for later ``when``s. A
``when`` reading an earlier step's output cannot be decided: the step is planned
as if it ran, with the condition it depends on (``StepPlanned.condition``).
Nothing here calls AWS; inspection before it did, read-only (the call layer
refuses any mutating call in a dry run).
"""

from __future__ import annotations

from typing import Any

from remediate.actions import registry
from remediate.executor.context import RunContext
from remediate.executor.events import StepPlanned
from remediate.executor.steps import TargetState
from remediate.language.model import Condition
from remediate.language.problems import Problems, render_path
from remediate.language.template import TemplateError, has_template, lookup, render


def render_known(value: Any, scope: dict[str, Any]) -> Any:
    """Render what can be rendered; keep templates whose values are not known yet."""
    if isinstance(value, str) and has_template(value):
        try:
            return render(value, scope)
        except TemplateError:
            return value
    if isinstance(value, list):
        return [render_known(item, scope) for item in value]
    if isinstance(value, dict):
        return {key: render_known(item, scope) for key, item in value.items()}
    return value


def undecided(when: Condition, scope: dict[str, Any]) -> str | None:
    """``when`` as a phrase if it reads an earlier step's output, which a dry run cannot
    know (None: the dry run can evaluate it)."""
    for ref in when.refs():
        if ref.startswith("steps.") and ".outputs." in ref:
            try:
                if lookup(ref, scope) is not None:
                    continue
            except TemplateError:
                pass
            return f"{when.describe()}, known at run time"
    return None


def plan_target(rc: RunContext, state: TargetState) -> list[str]:
    """Publish a :class:`StepPlanned` per step; the APIs the target's steps would call."""
    apis: list[str] = []
    target = state.target
    for index, step in enumerate(rc.playbook.steps):
        action = registry.get(step.action)
        mutating = bool(action and action.mutating)
        condition = undecided(step.when, state.scope(rc)) if step.when is not None else None
        if (step.when is not None and condition is None
                and not step.when.evaluate(state.scope(rc))):
            state.statuses[step.id] = "skipped"
            rc.bus.publish(StepPlanned(target, step.id, step.action, (), "when is false",
                                       mutating))
            continue
        if action is None:
            rc.bus.publish(StepPlanned(target, step.id, step.action, (),
                                       f"cannot plan: unknown action {step.action!r}", False,
                                       condition))
            continue
        refusal = rc.policy.step_refusal(action)
        if refusal is not None:
            state.statuses[step.id] = "skipped"
            rc.bus.publish(StepPlanned(target, step.id, step.action, (),
                                       f"would stop the target here: {refusal}", mutating,
                                       condition))
            if condition is None:
                break
            continue
        problems = Problems()
        params = action.params.check(render_known(dict(step.params), state.scope(rc)),
                                     ("steps", index, "with"), problems)
        if problems:
            text = "; ".join(f"{render_path(p.path)}: {p.message}" for p in problems.items)
            rc.bus.publish(StepPlanned(target, step.id, step.action, (),
                                       f"cannot plan: {text}", mutating))
            continue
        try:
            plan = action.plan(state.context(rc, step.id, params), params)
        except Exception as exc:  # a plan() bug must not hide the other targets' plans
            rc.bus.publish(StepPlanned(target, step.id, step.action, (),
                                       f"cannot plan: {type(exc).__name__}: {exc}", mutating))
            continue
        state.statuses[step.id] = "skipped" if plan.skip else "succeeded"
        planned = tuple(call.api for call in plan.calls)
        rc.bus.publish(StepPlanned(target, step.id, step.action, planned, plan.skip, mutating,
                                   condition))
        if not plan.skip:
            apis.extend(planned)
            for call in plan.calls:
                if call.probe is not None:
                    state.probes.setdefault(call.api, call.probe)
    return apis
