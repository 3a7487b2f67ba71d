"""Checks on a playbook's meaning, after its structure: the rules a schema can't say.

Unknown actions, actions on the wrong kind of target, action parameters against
each action's own schema and rules, duplicate step ids, references to undefined
parameters, facts or step outputs, parameter defaults of the wrong type, and guard
sanity. They run on the raw data, guarded by type checks, so one structural
mistake does not hide the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from remediate.actions import registry
from remediate.findings import FINDINGS
from remediate.kinds import KINDS
from remediate.language.problems import Path, Problems
from remediate.language.references import Scope, check_literal, of_type
from remediate.language.schema import did_you_mean
from remediate.language.spec import PARAMETER_TYPES


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def check_semantics(data: Mapping[str, Any], base_dir: str, problems: Problems) -> None:
    params = _mapping(data.get("parameters"))
    _check_parameters(params, problems)
    targets = _mapping(data.get("targets"))
    kind = targets.get("kind") if isinstance(targets.get("kind"), str) else None
    _check_targets(targets, kind, problems)
    steps = _list(data.get("steps"))
    rollback = _list(data.get("rollback"))
    _check_step_ids(steps, rollback, problems)
    outputs: dict[str, list[str]] = {}
    for section, items in (("steps", steps), ("rollback", rollback)):
        for i, step in enumerate(items):
            if not isinstance(step, Mapping):
                continue
            path: Path = (section, i)
            action = _check_action(step, path, kind, base_dir, problems)
            scope = Scope(params, kind, outputs)
            scope.check_templates(step.get("with"), (*path, "with"), problems)
            scope.check_condition(step.get("when"), (*path, "when"), problems)
            if step.get("on_failure") == "rollback" and not rollback and section == "steps":
                problems.add((*path, "on_failure"),
                             "on_failure is 'rollback' but the playbook has no rollback steps",
                             "add a `rollback:` list, or use on_failure: abort")
            if section == "rollback" and step.get("on_failure") == "rollback":
                problems.add((*path, "on_failure"), "a rollback step cannot itself roll back",
                             "use on_failure: abort or continue")
            if isinstance(step.get("id"), str):
                outputs[step["id"]] = list(action.outputs) if action else []
    _check_guards(_mapping(data.get("guards")), problems)


def _check_parameters(params: Mapping[str, Any], problems: Problems) -> None:
    for name, spec in params.items():
        if not isinstance(spec, Mapping) or spec.get("type") not in PARAMETER_TYPES:
            continue
        path: Path = ("parameters", name)
        for key in ("default", "choices"):
            check_literal(spec.get(key), (*path, key), problems, "parameter values",
                          "a parameter's value is used as written; templates go in a step's "
                          "`with`")
        default = spec.get("default")
        if default is not None and not of_type(default, spec["type"]):
            problems.add((*path, "default"), f"expected a default of type {spec['type']}, "
                                             f"found {default!r}")
        if spec.get("required") is True and default is not None:
            problems.add((*path, "required"), "a required parameter cannot have a default",
                         "drop `default`, or drop `required: true`")
        choices = spec.get("choices")
        if isinstance(choices, list) and default is not None and default not in choices:
            problems.add((*path, "default"), f"expected the default to be one of the choices "
                                             f"({', '.join(map(str, choices))}), found "
                                             f"{default!r}")


def _check_targets(targets: Mapping[str, Any], kind: str | None, problems: Problems) -> None:
    check_literal(targets, ("targets",), problems, "targets",
                  "targets are selected as written: narrow them on the command line "
                  "(--tag KEY=VALUE, --filter, --target-ids, --region)")
    if kind == "workspace" and targets.get("filters"):
        problems.add(("targets", "filters"), "EC2 filters do not apply to workspace targets",
                     "select WorkSpaces by ids or tags")
    prefix = {"ec2-instance": "i-", "workspace": "ws-"}.get(kind or "")
    for i, target_id in enumerate(_list(targets.get("ids"))):
        if prefix and isinstance(target_id, str) and not target_id.startswith(prefix):
            problems.add(("targets", "ids", i), f"expected an {kind} id starting with {prefix!r}, "
                                                f"found {target_id!r}")
    if not targets.get("ids") and not targets.get("tags") and not targets.get("filters") \
            and kind is not None:
        problems.add(("targets",), "no selector: expected ids, tags or filters",
                     "selecting every instance of an account by accident is how outages get "
                     "worse; say which targets (the command line can narrow it further)")


def _check_step_ids(steps: list[Any], rollback: list[Any], problems: Problems) -> None:
    seen: dict[str, Path] = {}
    for section, items in (("steps", steps), ("rollback", rollback)):
        for i, step in enumerate(items):
            step_id = step.get("id") if isinstance(step, Mapping) else None
            if not isinstance(step_id, str):
                continue
            if step_id in seen:
                first = seen[step_id]
                problems.add((section, i, "id"), f"duplicate step id {step_id!r} (first used "
                                                 f"at {first[0]}[{first[1]}])",
                             "step ids must be unique across steps and rollback")
            else:
                seen[step_id] = (section, i)


def _check_action(step: Mapping[str, Any], path: Path, kind: str | None, base_dir: str,
                  problems: Problems) -> Any:
    name = step.get("action")
    if not isinstance(name, str):
        return None
    action = registry.get(name)
    if action is None:
        known = registry.names()
        hint = did_you_mean(name, known)
        listed = "valid actions: " + ", ".join(known)
        problems.add((*path, "action"), f"unknown action {name!r}",
                     f"{hint} {listed}" if hint else listed)
        return None
    if kind in KINDS and kind not in action.kinds:
        problems.add((*path, "action"), f"action {name!r} works on "
                                        f"{', '.join(sorted(action.kinds))} targets, but this "
                                        f"playbook targets {kind}")
    params = step.get("with", {})
    if isinstance(params, Mapping):
        problems.extend(action.check_params(params, (*path, "with"), base_dir)[1])
    return action


def _check_guards(guards: Mapping[str, Any], problems: Problems) -> None:
    batches = _list(guards.get("batches"))
    max_targets = guards.get("max_targets")
    counts = [b for b in batches if isinstance(b, int) and not isinstance(b, bool)]
    if isinstance(max_targets, int) and counts and counts[0] > max_targets:
        problems.add(("guards", "batches", 0), f"the canary batch ({counts[0]} targets) is "
                                               f"larger than max_targets ({max_targets})")
    percents = [float(b.rstrip("%")) for b in batches if isinstance(b, str) and b.endswith("%")
                and b.rstrip("%").replace(".", "", 1).isdigit()]
    if percents != sorted(percents):
        problems.add(("guards", "batches"), "expected batches that grow (e.g. 1, 5%, 25%, "
                                            f"100%), found {batches}",
                     "a canary batch comes first, then larger ones")
    ack = _list(guards.get("require_ack"))
    for i, kind in enumerate(ack):
        if isinstance(kind, str) and kind in FINDINGS and ack.index(kind) != i:
            problems.add(("guards", "require_ack", i), f"{kind!r} is listed twice")
