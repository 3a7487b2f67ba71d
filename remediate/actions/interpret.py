"""The local engine's reading of an action's program: each step becomes requests.

``Read`` is an observe (many targets share one Describe call), ``Get`` and ``Send``
are :class:`~remediate.actions.requests.Call`s (paced, merged, journaled by the
executor), ``Await`` is a :class:`~remediate.actions.requests.Wait` whose ``until``
and ``failed`` evaluate the program's predicates on each record the poller reads,
``Pause`` a Sleep. An AWS error of a ``Send`` that no ``OnError`` takes fails the
step naming the call; an unknown outcome (:class:`OutcomeUnknown`) is not caught:
the executor reconciles by running the program again from its start.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import secrets
from collections.abc import Generator, Mapping, Sequence
from typing import Any

from remediate.actions.contract import StepContext
from remediate.actions.program import (
    ANY_ERROR,
    Accepted,
    All,
    AnyOf,
    Arrival,
    AtLeast,
    Await,
    Count,
    Done,
    Eq,
    Exists,
    Fail,
    Find,
    Fmt,
    Get,
    If,
    In,
    Item,
    Loop,
    Native,
    Not,
    OnError,
    Pause,
    Plus,
    Pred,
    Program,
    Put,
    Read,
    Retried,
    Same,
    Script,
    Send,
    Sent,
    Seq,
    Set,
    Sha256,
    Var,
)
from remediate.actions.requests import (
    ActionRun,
    AwsError,
    Call,
    OutcomeUnknown,
    Sleep,
    StepFailed,
    Wait,
    WaitTimeout,
    observe,
)
from remediate.actions.script_files import read_script
from remediate.actions.script_lines import build_script
from remediate.language.quoting import UnsafeValue

Scope = dict[str, Any]
Flow = Generator[Any, Any, "Mapping[str, Any] | None"]
_PART = re.compile(r"([^.\[\]]+)|\[(\d+|\*)\]")


class _Stop(Exception):
    """A Done deep in the program: its outputs."""

    def __init__(self, outputs: Mapping[str, Any]) -> None:
        super().__init__("done")
        self.outputs = outputs


def lookup(path: str, scope: Mapping[str, Any]) -> Any:
    """The value at a dotted path (``vars.first.list[0].State``); None if any part is
    missing. ``[*]`` flattens: every item's rest of the path, as a list."""
    return _walk(scope, _parts(path))


@functools.lru_cache(maxsize=4096)
def _parts(path: str) -> tuple[str, ...]:
    # Programs read the same few paths for every target: parse each once.
    return tuple(m.group(1) or m.group(2) for m in _PART.finditer(path))


def _walk(value: Any, parts: Sequence[str]) -> Any:
    for index, part in enumerate(parts):
        if value is None:
            return None
        if part == "*":
            items = value if isinstance(value, list) else []
            found = [_walk(item, parts[index + 1:]) for item in items]
            return [item for sub in found for item in (sub if isinstance(sub, list) else [sub])
                    if item is not None]
        if part.isdigit():
            value = value[int(part)] if isinstance(value, list) and int(part) < len(value) \
                else None
        else:
            value = value.get(part) if isinstance(value, Mapping) else None
    return value


def text(value: Any) -> str:
    """A value in a message, as Step Functions' States.Format writes it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)


def evaluate(expr: Any, scope: Mapping[str, Any]) -> Any:
    if isinstance(expr, Var):
        return lookup(expr.path, scope)
    if isinstance(expr, Fmt):
        return "".join(text(evaluate(part, scope)) for part in expr.parts)
    if isinstance(expr, Count):
        found = lookup(expr.of.path, scope)
        return len(found) if isinstance(found, list) else 0
    if isinstance(expr, Plus):
        return (lookup(expr.of.path, scope) or 0) + expr.n
    if isinstance(expr, Item):
        found, index = lookup(expr.of.path, scope), evaluate(expr.index, scope)
        return found[index] if isinstance(found, list) and 0 <= index < len(found) else None
    if isinstance(expr, Put):
        mapping = lookup(expr.mapping.path, scope)
        return {**(mapping if isinstance(mapping, Mapping) else {}),
                text(evaluate(expr.key, scope)): evaluate(expr.value, scope)}
    if isinstance(expr, Sha256):
        return hashlib.sha256(text(evaluate(expr.of, scope)).encode()).hexdigest()
    if isinstance(expr, Arrival):
        return secrets.token_hex(8)
    if isinstance(expr, Script):
        return _script(expr, scope)
    if isinstance(expr, Mapping):
        return {key: evaluate(item, scope) for key, item in expr.items()}
    if isinstance(expr, list | tuple):
        return [evaluate(item, scope) for item in expr]
    return expr


def _script(script: Script, scope: Mapping[str, Any]) -> list[str]:
    body = (read_script(str(lookup("run.base_dir", scope) or "."), script.file)
            if script.file is not None else list(script.lines))
    values = {name: str(evaluate(value, scope)) for name, value in script.variables.items()}
    try:
        return build_script(script.shell, values, body)
    except UnsafeValue as exc:
        raise StepFailed(f"parameters: {exc}") from exc


def _same_type(found: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool) or isinstance(found, bool):
        return isinstance(wanted, bool) and isinstance(found, bool)
    if isinstance(wanted, int | float):
        return isinstance(found, int | float)
    return isinstance(found, type(wanted))


def holds(pred: Pred, scope: Mapping[str, Any], ctx: StepContext | None = None) -> bool:
    if isinstance(pred, Eq):
        found = lookup(pred.at.path, scope)
        return found is not None and _same_type(found, pred.value) and found == pred.value
    if isinstance(pred, In):
        found = lookup(pred.at.path, scope)
        return found is not None and any(_same_type(found, v) and found == v
                                         for v in pred.values)
    if isinstance(pred, Exists):
        return (lookup(pred.at.path, scope) is not None) == pred.yes
    if isinstance(pred, AtLeast):
        found = lookup(pred.at.path, scope)
        return isinstance(found, int | float) and not isinstance(found, bool) and \
            found >= pred.n
    if isinstance(pred, Same):
        one, other = lookup(pred.at.path, scope), lookup(pred.other.path, scope)
        return isinstance(one, str) and one == other
    if isinstance(pred, All):
        return all(holds(p, scope, ctx) for p in pred.preds)
    if isinstance(pred, AnyOf):
        return any(holds(p, scope, ctx) for p in pred.preds)
    if isinstance(pred, Not):
        return not holds(pred.pred, scope, ctx)
    if isinstance(pred, Sent):
        return ctx is None or ctx.may_have_sent(pred.operation)
    if isinstance(pred, Retried):
        return ctx is None or ctx.may_have_made(pred.operation)
    if isinstance(pred, Accepted):
        return ctx is not None and pred.kind in ctx.accepted
    raise TypeError(f"not a predicate: {pred!r}")


def pick(response: Mapping[str, Any], paths: Mapping[str, str]) -> dict[str, Any]:
    return {name: lookup(path, response) for name, path in paths.items()}


def find(items: Any, key: str, value: Any) -> Any:
    """The first mapping in ``items`` whose ``key`` is ``value`` (a string); None."""
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping) and isinstance(value, str) and item.get(key) == value:
            return item
    return None


def run(program: Program, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
    """Run ``program`` for ``ctx``'s target: the requests it makes, then its outputs."""
    target = {**ctx.facts, "id": ctx.target.id, "region": ctx.target.region,
              "account": ctx.target.account}
    scope: Scope = {"target": target, "params": dict(params),
                    "run": {"id": ctx.run_id, "step": ctx.step_id or None,
                            "base_dir": ctx.base_dir, "failure": ctx.failure}, "vars": {}}
    try:
        yield from _seq(program, scope, ctx, params)
    except _Stop as stop:
        return dict(stop.outputs)
    return {}


def _seq(steps: Seq, scope: Scope, ctx: StepContext, params: Mapping[str, Any]) -> Flow:
    for step in steps:
        yield from _step(step, scope, ctx, params)
    return None


def _step(step: Any, scope: Scope, ctx: StepContext, params: Mapping[str, Any]) -> Flow:
    at = scope["vars"]
    if isinstance(step, Read):
        at[step.into] = yield observe(step.resource, str(evaluate(step.id, scope)))
    elif isinstance(step, Get):
        call = Call(step.service, step.operation, evaluate(dict(step.params), scope))
        try:
            response = yield call
        except AwsError as exc:
            handler = _handler(step.on_error, exc)
            if handler is None:
                raise StepFailed(f"{step.operation} failed: {exc}") from exc
            yield from _seq(handler.then, scope, ctx, params)
            return None
        at[step.into] = pick(response, step.pick)
    elif isinstance(step, Send):
        yield from _send(step, scope, ctx, params)
    elif isinstance(step, Await):
        yield from _await(step, scope, ctx, params)
    elif isinstance(step, Find):
        at[step.into] = find(lookup(step.items.path, scope), step.key,
                             evaluate(step.value, scope))
    elif isinstance(step, If):
        for pred, body in step.cases:
            if holds(pred, scope, ctx):
                yield from _seq(body, scope, ctx, params)
                break
        else:
            yield from _seq(step.orelse, scope, ctx, params)
    elif isinstance(step, Loop):
        while holds(step.pred, scope, ctx):
            yield from _seq(step.body, scope, ctx, params)
    elif isinstance(step, Set):
        at[step.into] = evaluate(step.value, scope)
    elif isinstance(step, Pause):
        yield Sleep(float(evaluate(step.seconds, scope)))
    elif isinstance(step, Fail):
        raise StepFailed(str(evaluate(step.message, scope)), step.kind)
    elif isinstance(step, Done):
        raise _Stop(evaluate(dict(step.outputs), scope))
    elif isinstance(step, Native):
        at[step.into] = yield from step.local(ctx, params, scope)
    else:
        raise TypeError(f"not a program step: {step!r}")
    return None


def _handler(handlers: tuple[OnError, ...], exc: AwsError) -> OnError | None:
    """The first handler taking ``exc``'s code."""
    return next((h for h in handlers if exc.code in h.codes or ANY_ERROR in h.codes), None)


def _send(step: Send, scope: Scope, ctx: StepContext, params: Mapping[str, Any]) -> Flow:
    request = evaluate(dict(step.params), scope)
    call = Call(step.service, step.operation, request, batch_key=step.batch_key,
                note=text(evaluate(step.note, scope)) if step.note else "",
                handles=frozenset(code for handler in step.on_error for code in handler.codes
                                  if code != ANY_ERROR))
    try:
        response = yield call
    except AwsError as exc:
        if exc.code in step.reconcile_on and ctx.reply_lost(step.operation):
            # What this step's own lost call did: reconcile (see Send.reconcile_on).
            raise OutcomeUnknown(exc.code, exc.message, exc.operation or step.operation,
                                 exc.request_id) from exc
        handler = _handler(step.on_error, exc)
        if handler is not None:
            if handler.into is not None:
                scope["vars"][handler.into] = {"Error": exc.code, "Cause": str(exc)}
            yield from _seq(handler.then, scope, ctx, params)
            return None
        subject = ctx.target.id if step.subject is None else text(evaluate(step.subject, scope))
        raise StepFailed(f"{step.operation} for {subject} failed: {exc}") from exc
    if step.into is not None:
        scope["vars"][step.into] = pick(response, step.pick)
    return None


def _await(step: Await, scope: Scope, ctx: StepContext, params: Mapping[str, Any]) -> Flow:
    def with_it(record: Any) -> Scope:
        return {**scope, "it": record}

    def done(record: Any) -> bool:
        seen = with_it(record)
        return holds(step.until, seen, ctx) or any(holds(p, seen, ctx) for p, _ in step.exits)

    def failed(record: Any) -> str | None:
        seen = with_it(record)
        for pred, message in step.fail:
            if holds(pred, seen, ctx):
                return str(evaluate(message, seen))
        return None

    wait = Wait(step.resource, str(evaluate(step.id, scope)), until=done, failed=failed,
                timeout=float(evaluate(step.timeout, scope)),
                what=text(evaluate(step.what, scope)))
    try:
        record = yield wait
    except WaitTimeout as timeout:
        if step.on_timeout is None:
            raise
        scope["vars"][step.into] = timeout.record
        yield from _seq(step.on_timeout, scope, ctx, params)
        return None
    scope["vars"][step.into] = record
    seen = with_it(record)
    if holds(step.until, seen, ctx):
        return None
    for pred, body in step.exits:
        if holds(pred, seen, ctx):
            yield from _seq(body, scope, ctx, params)
            return None
    return None
