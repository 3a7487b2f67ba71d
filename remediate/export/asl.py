"""Amazon States Language building blocks: run-time values, payloads, states, Choice rules.

A value known only while the state machine runs (a fact, an earlier step's
output) is a :class:`Ref`: a JSONPath into the iteration's state or an
intrinsic function. :func:`payload` turns a dict holding Refs into the
``Parameters``/``ResultSelector`` form (``"Key.$": "$.path"``).

Paths are written so that AWS and moto's interpreter read them alike: moto 5.2.5
returns a one-element list for a path that ends in ``[n].Field`` (AWS returns
the field), so no path here ends that way; a fragment selects the element first
(``$.Volumes[0]``) and reads its fields from the stored copy. The compiler
checks every path it emits (:data:`MOTO_UNSAFE_PATH`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from remediate.aws.apis import is_mutating

State = dict[str, Any]
States = dict[str, State]
Rule = dict[str, Any]

# A path ending in an index and one field: moto answers it as a list (see module doc).
MOTO_UNSAFE_PATH: Final = re.compile(r"\$[\w.\[\]]*\[\d+\]\.\w+(?![\w.\[])")

# Errors of SDK integrations: AWS names them ``Ec2.Ec2Exception`` (EC2 has no modeled
# exceptions, so every EC2 error is that one name); moto's interpreter spells the
# service in lower case (``ec2.ec2Exception``). States.TaskFailed matches both.
TASK_FAILED: Final = "States.TaskFailed"


@dataclass(frozen=True)
class Ref:
    """A value read while the state machine runs: a JSONPath or an intrinsic function."""

    expr: str

    def __str__(self) -> str:
        return self.expr


def path(expr: str) -> Ref:
    if not expr.startswith("$"):
        raise ValueError(f"not a JSONPath: {expr!r}")
    return Ref(expr)


# Characters an intrinsic-function string literal must escape. AWS reads ``\\'``
# escapes; moto's lexer does not, so they are replaced by look-alikes instead.
_LOOKALIKE: Final = str.maketrans({"'": "`", "{": "(", "}": ")", "\\": "/"})


def text(value: str) -> str:
    """``value`` safe inside an intrinsic-function string literal (see ``_LOOKALIKE``)."""
    return value.translate(_LOOKALIKE)


def literal(value: str) -> str:
    return "'" + text(value) + "'"


def arg(value: Any) -> str:
    """One intrinsic-function argument."""
    if isinstance(value, Ref):
        return value.expr
    if isinstance(value, str):
        return literal(value)
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    raise ValueError(f"{value!r} cannot be an intrinsic function argument")


def fmt(*parts: Any) -> Ref:
    """``States.Format`` of the parts: text is copied, a Ref is read at run time."""
    template: list[str] = []
    values: list[str] = []
    for part in parts:
        if isinstance(part, Ref):
            template.append("{}")
            values.append(part.expr)
        else:
            template.append(text(str(part)))
    joined = "'" + "".join(template) + "'"
    return Ref(f"States.Format({', '.join([joined, *values])})")


def array(*values: Any) -> Ref:
    return Ref(f"States.Array({', '.join(arg(v) for v in values)})")


def add(value: Ref, step: int) -> Ref:
    return Ref(f"States.MathAdd({value.expr}, {step})")


def as_text(value: Ref) -> Ref:
    """A JSON value as text, for messages."""
    return Ref(f"States.JsonToString({value.expr})")


def payload(value: Mapping[str, Any]) -> dict[str, Any]:
    """``value`` in Parameters form: keys holding Refs get ``.$``; a list holding Refs
    becomes ``States.Array``."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, Ref):
            out[f"{key}.$"] = item.expr
        elif isinstance(item, Mapping):
            out[key] = payload(item)
        elif isinstance(item, list | tuple) and any(isinstance(i, Ref) for i in item):
            out[f"{key}.$"] = array(*item).expr
        elif isinstance(item, list | tuple):
            out[key] = [payload(i) if isinstance(i, Mapping) else i for i in item]
        else:
            out[key] = item
    return out


# ---- states -------------------------------------------------------------------------


def resource(service: str, operation: str) -> str:
    """``arn:aws:states:::aws-sdk:ec2:stopInstances`` for ("ec2", "StopInstances")."""
    return f"arn:aws:states:::aws-sdk:{service}:{operation[0].lower()}{operation[1:]}"


def api_retry(service: str, operation: str) -> list[Rule]:
    """Retries for one SDK call: throttling and transient errors, with full jitter.

    AWS reports every EC2 error under one name (the code is only in the cause), so
    throttling cannot be told from a refusal: every task failure is retried, fewer
    times for calls that change something.
    """
    attempts = 3 if is_mutating(service, operation) else 5
    return [{"ErrorEquals": [TASK_FAILED], "IntervalSeconds": 2, "BackoffRate": 2.0,
             "MaxAttempts": attempts, "MaxDelaySeconds": 60, "JitterStrategy": "FULL"}]


def _flow(state: State, next_state: str | None) -> State:
    if next_state is None:
        state["End"] = True
    else:
        state["Next"] = next_state
    return state


def task(service: str, operation: str, parameters: Mapping[str, Any], next_state: str | None,
         *, select: Mapping[str, Any] | None = None, result_path: str | None = None,
         catch: Sequence[Rule] = (), comment: str = "") -> State:
    """An SDK call; ``select`` (a ResultSelector, Refs into the response) is stored at
    ``result_path`` (``None``: the response is dropped and the input passes on)."""
    state: State = {"Type": "Task", "Resource": resource(service, operation)}
    if comment:
        state["Comment"] = comment
    state["Parameters"] = payload(parameters)
    if select is not None:
        state["ResultSelector"] = payload(select)
    state["ResultPath"] = result_path
    state["Retry"] = api_retry(service, operation)
    if catch:
        state["Catch"] = list(catch)
    return _flow(state, next_state)


def pass_state(next_state: str | None, *, parameters: Mapping[str, Any] | None = None,
               result: Any = None, result_path: str | None = "$") -> State:
    state: State = {"Type": "Pass"}
    if parameters is not None:
        state["Parameters"] = payload(parameters)
    elif result is not None:
        state["Result"] = result
    state["ResultPath"] = result_path
    return _flow(state, next_state)


def wait(seconds: int, next_state: str) -> State:
    return {"Type": "Wait", "Seconds": max(1, int(seconds)), "Next": next_state}


def fail(error: str, cause: str | Ref) -> State:
    if isinstance(cause, Ref):
        return {"Type": "Fail", "Error": error, "CausePath": cause.expr}
    return {"Type": "Fail", "Error": error, "Cause": cause}


def choice(branches: Sequence[tuple[Rule, str]], default: str) -> State:
    return {"Type": "Choice",
            "Choices": [{**rule, "Next": target} for rule, target in branches],
            "Default": default}


# ---- Choice rules ---------------------------------------------------------------------


def present(where: str, yes: bool = True) -> Rule:
    return {"Variable": where, "IsPresent": yes}


def _typed(where: str, value: Any) -> Rule:
    if value is None:
        return {"Variable": where, "IsNull": True}
    if isinstance(value, bool):
        return {"And": [{"Variable": where, "IsBoolean": True},
                        {"Variable": where, "BooleanEquals": value}]}
    if isinstance(value, int | float):
        return {"And": [{"Variable": where, "IsNumeric": True},
                        {"Variable": where, "NumericEquals": value}]}
    if isinstance(value, str):
        return {"And": [{"Variable": where, "IsString": True},
                        {"Variable": where, "StringEquals": value}]}
    raise ValueError(f"cannot compare with {value!r} in a Choice state")


def equals(where: str, value: Any) -> Rule:
    """Present, of ``value``'s type, and equal to it (no run-time error on other types)."""
    return {"And": [present(where), _typed(where, value)]}


def one_of(where: str, values: Sequence[Any]) -> Rule:
    if len(values) == 1:
        return equals(where, values[0])
    return {"Or": [equals(where, v) for v in values]}


def same_as(where: str, other: str) -> Rule:
    """The string at ``where`` equals the string at ``other`` (both present)."""
    return {"And": [present(where), present(other),
                    {"Variable": where, "StringEqualsPath": other}]}


def at_least(where: str, number: int | float) -> Rule:
    return {"Variable": where, "NumericGreaterThanEquals": number}


def all_of(*rules: Rule) -> Rule:
    return rules[0] if len(rules) == 1 else {"And": list(rules)}


def any_of(*rules: Rule) -> Rule:
    return rules[0] if len(rules) == 1 else {"Or": list(rules)}


def negate(rule: Rule) -> Rule:
    return {"Not": rule}
