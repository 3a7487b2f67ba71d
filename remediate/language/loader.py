"""Load a playbook: parse -> check structure -> check meaning -> build the model.

``remediate validate`` and ``remediate run`` both come through here, so a
playbook that validates is the playbook that runs. Every problem is found before
the first AWS call, each with file, line, column, key path, expected and found.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path as FsPath
from typing import Any

from remediate.aws.apis import Bucket
from remediate.language.bindings import Misfit, misfits
from remediate.language.model import (
    Account,
    BatchSize,
    Condition,
    Execution,
    Guards,
    Parameter,
    Playbook,
    Retries,
    Step,
    TargetSelector,
)
from remediate.language.problems import Located, Problem, Problems, render_path
from remediate.language.schema import INVALID, did_you_mean
from remediate.language.semantics import check_semantics
from remediate.language.spec import PLAYBOOK
from remediate.language.template import has_template
from remediate.language.yamlload import Positions, YamlProblem, check_size, parse

PLAYBOOK_SUFFIXES = (".yaml", ".yml")


@dataclass
class LoadResult:
    source: str
    playbook: Playbook | None = None
    problems: list[Located] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.playbook is not None and not self.problems


def _locate(problems: list[Problem], source: str, lines: list[str],
            positions: Positions) -> list[Located]:
    out = []
    for problem in problems:
        mark = positions.find(problem.path, problem.at_key)
        line_text = lines[mark.line - 1] if 0 < mark.line <= len(lines) else ""
        out.append(Located(source, mark.line, mark.col, render_path(problem.path),
                           problem.message, problem.hint, line_text.rstrip("\n")))
    out.sort(key=lambda p: (p.line, p.col))
    return out


def load_text(text: str | bytes, source: str = "<string>", base_dir: str = ".") -> LoadResult:
    result = LoadResult(source)
    try:
        data, positions = parse(text)
    except YamlProblem as exc:
        decoded = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        lines = decoded.splitlines()[: exc.mark.line] if len(decoded) < 10_000_000 else []
        line_text = lines[exc.mark.line - 1] if 0 < exc.mark.line <= len(lines) else ""
        result.problems.append(Located(source, exc.mark.line, exc.mark.col, "", exc.message,
                                       exc.hint, line_text[:200]))
        return result
    problems = Problems()
    checked = PLAYBOOK.check(data, (), problems)
    check_semantics(data, base_dir, problems)
    decoded = text.decode("utf-8-sig") if isinstance(text, bytes) else text
    lines = decoded.splitlines()
    result.problems = _locate(problems.items, source, lines, positions)
    if not result.problems and checked is not INVALID:
        playbook = replace(build(checked, source), text=decoded)
        result.problems = _locate(_default_problems(playbook, base_dir), source, lines,
                                  positions)
        result.playbook = None if result.problems else playbook
    return result


def _default_problems(playbook: Playbook, base_dir: str) -> list[Problem]:
    """Defaults a step that uses them cannot take (a run would fail every target there)."""
    defaults = {name: p.default for name, p in playbook.parameters.items()
                if p.default is not None}
    return [Problem(("parameters", misfit.names[0], "default"),
                    f"the default does not fit {misfit.describe()}",
                    "change the default (or the step): a run with it would fail every "
                    "target at this step")
            for misfit in misfits(playbook, defaults, base_dir)]


def load_file(path: str | os.PathLike[str]) -> LoadResult:
    fs_path = FsPath(path)
    source = str(path)
    try:
        check_size(fs_path.stat().st_size)  # don't read a 50 MB file just to refuse it
        raw = fs_path.read_bytes()
    except YamlProblem as exc:
        return LoadResult(source, None, [Located(source, 1, 1, "", exc.message, exc.hint)])
    except OSError as exc:
        return LoadResult(source, None, [Located(source, 1, 1, "",
                                                 f"cannot read the file: {exc.strerror}")])
    return load_text(raw, source, str(fs_path.parent))


def playbook_files(paths: list[str]) -> tuple[list[str], list[Located]]:
    """Expand folders into the playbooks they hold (recursively, sorted)."""
    files: list[str] = []
    missing: list[Located] = []
    for path in paths:
        fs_path = FsPath(path)
        if fs_path.is_dir():
            found = sorted(str(p) for p in fs_path.rglob("*")
                           if p.suffix in PLAYBOOK_SUFFIXES and p.is_file())
            if not found:
                missing.append(Located(path, 1, 1, "", "no playbooks (*.yaml, *.yml) in "
                                                       "this folder"))
            files.extend(found)
        elif fs_path.exists():
            files.append(path)
        else:
            missing.append(Located(path, 1, 1, "", "no such file or folder"))
    return files, missing


def _retries(data: Mapping[str, Any] | None) -> Retries:
    if not data:
        return Retries()
    return Retries(attempts=data["attempts"], initial_delay=data["delay"],
                   max_delay=data["max_delay"], multiplier=data["multiplier"],
                   jitter=data["jitter"])


def condition(data: Mapping[str, Any]) -> Condition:
    for op in ("all", "any"):
        if op in data:
            return Condition(op, children=tuple(condition(c) for c in data[op]))
    if "not" in data:
        return Condition("not", children=(condition(data["not"]),))
    (op,) = (key for key in data if key != "value")
    return Condition(op, ref=data["value"], operand=data[op])


def _step(data: Mapping[str, Any], has_rollback: bool) -> Step:
    on_failure = data["on_failure"]
    if on_failure == "rollback" and not has_rollback:
        on_failure = "abort"
    return Step(
        id=data["id"], action=data["action"], params=dict(data["with"]),
        retries=_retries(data["retries"]), timeout=data["timeout"],
        when=condition(data["when"]) if data["when"] else None,
        on_failure=on_failure, description=data["description"],
    )


def _batch(value: int | str) -> BatchSize:
    if isinstance(value, int):
        return BatchSize(count=value)
    return BatchSize(percent=float(value.rstrip("%")))


def build(data: Mapping[str, Any], source: str) -> Playbook:
    targets = data["targets"]
    guards = data["guards"]
    execution = data["execution"]
    has_rollback = bool(data["rollback"])
    return Playbook(
        version=data["version"],
        name=data["name"],
        description=data["description"],
        parameters={
            name: Parameter(name, p["type"], p.get("default"), p["required"], p["description"],
                            tuple(p["choices"] or ()))
            for name, p in data["parameters"].items()
        },
        targets=TargetSelector(
            kind=targets["kind"], ids=tuple(targets["ids"]),
            tags={k: tuple(str(v) for v in vs) for k, vs in targets["tags"].items()},
            filters={k: tuple(str(v) for v in vs) for k, vs in targets["filters"].items()},
            regions=tuple(targets["regions"]),
            accounts=tuple(Account(a["name"], a["profile"], a["role_arn"], a["external_id"])
                           for a in targets["accounts"]),
        ),
        steps=tuple(_step(s, has_rollback) for s in data["steps"]),
        rollback=tuple(_step(s, False) for s in data["rollback"]),
        guards=Guards(
            max_targets=guards["max_targets"],
            batches=tuple(_batch(b) for b in guards["batches"]),
            rollout=guards["rollout"],
            max_failure_percent=guards["max_failure_percent"],
            require_ack=tuple(guards["require_ack"]),
            pause_after_canary=guards["pause_after_canary"],
            skip_healthy=guards["skip_healthy"],
        ),
        execution=Execution(
            concurrency=execution["concurrency"],
            rate_limits={k: Bucket(v["burst"], v["rate"])
                         for k, v in execution["rate_limits"].items()},
            poll_interval=execution["poll_interval"],
            default_timeout=execution["default_timeout"],
        ),
        source=source,
    )


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _coerce(param: Parameter, text: str) -> Any:
    if param.type == "integer":
        return int(text)
    if param.type == "number":
        number = float(text)
        if not math.isfinite(number):  # nan passes every bound it is compared with
            raise ValueError(text)
        return number
    if param.type == "boolean":
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise ValueError(text)
    if param.type == "list":
        return [item.strip() for item in text.split(",") if item.strip()]
    return text


def bind_params(playbook: Playbook, overrides: Mapping[str, str]) -> tuple[dict[str, Any],
                                                                          list[str]]:
    """Parameter values for a run: defaults, then ``--param key=value`` overrides."""
    values: dict[str, Any] = {}
    errors: list[str] = []
    for key in overrides:
        if key not in playbook.parameters:
            known = list(playbook.parameters)
            hint = did_you_mean(key, known) or (
                "its parameters: " + ", ".join(known) if known else "it has no parameters")
            errors.append(f"--param {key}: the playbook has no parameter {key!r} ({hint})")
    for name, param in playbook.parameters.items():
        if name in overrides:
            if has_template(overrides[name]):
                errors.append(f"--param {name}: expected a value, found a template "
                              f"{shown(overrides[name])} (parameter values are not rendered)")
                continue
            try:
                value = _coerce(param, overrides[name])
            except ValueError:
                errors.append(f"--param {name}: expected {param.type}, found "
                              f"{shown(overrides[name])}")
                continue
        elif param.default is not None:
            value = param.default
        elif param.required:
            errors.append(f"--param {name}=... is required ({param.description or param.type})")
            continue
        else:
            value = None
        if param.choices and value is not None and value not in param.choices:
            errors.append(f"--param {name}: expected one of "
                          f"{', '.join(map(str, param.choices))}, found {value!r}")
            continue
        values[name] = value
    if not errors:  # every value known: judge it by each step that uses it
        errors = [_misfit_text(m, overrides, values)
                  for m in misfits(playbook, values, playbook.folder)]
    return values, errors


def shown(text: str, limit: int = 80) -> str:
    """A command-line value in a one-line error: cut when long, quoted when it holds
    what a terminal would not show on one line (a newline)."""
    cut = text if len(text) <= limit else text[:limit - 3] + "..."
    return cut if cut.isprintable() else repr(cut)


def _misfit_text(misfit: Misfit, overrides: Mapping[str, str],
                 values: Mapping[str, Any]) -> str:
    def who(name: str) -> str:
        if name in overrides:
            return f"--param {name}={shown(overrides[name])}"
        if values.get(name) is None:
            return f"parameter {name} (unset; set it with --param {name}=...)"
        return f"parameter {name} (default {shown(repr(values[name]))})"

    return f"{', '.join(map(who, misfit.names))}: {misfit.describe()}"
