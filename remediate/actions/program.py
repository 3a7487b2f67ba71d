"""Actions as programs: one definition that both engines run.

An action says what it does once, as data: a small program of steps (read a
resource, call AWS, wait until a predicate holds, branch, loop, fail, return its
outputs). The local engine interprets it (:mod:`remediate.actions.interpret`:
each step becomes the executor's requests, so calls are still paced, merged and
journaled, and waits still poll many targets with one Describe); the Step
Functions compiler renders the same program as Amazon States Language
(:mod:`remediate.export.program_asl`). Conditions and waits are data for the same
reason: a predicate can be evaluated here *and* rendered as a Choice rule; a
Python closure could only be evaluated.

Values a program reads are :class:`Var` paths into its scope:

===================  =====================================================
``target.<fact>``    the target's facts (``target.id``, ``target.region``)
``params.<name>``    the step's checked parameters
``run.id``           the run
``run.step``         the step's id (None when the action runs outside a playbook)
``run.base_dir``     the playbook's folder (a :class:`Script`'s ``file`` is read there)
``vars.<name>``      what an earlier step of the program stored (``into=``)
``it``               inside a :class:`Await` predicate: the record polled
===================  =====================================================

A program is a tuple of steps run in order; a sequence that ends without
:class:`Done` or :class:`Fail` goes on after the :class:`If` or :class:`Loop` that
holds it, and the program's own end returns no outputs. Nothing may follow a
``Done`` or a ``Fail`` in a sequence (it could never run): :func:`check` says so
when the program is built, so a compiled definition has no unreachable state.

Logic that only the local engine can run (the run-wide rescue pool, a lookup in
the journal) is a :class:`Native` step: a named escape hatch with a Python
generator for the local engine and a function that builds its Step Functions
counterpart, each documented where it is declared. Its counterpart is best written
as program steps too (``counterpart=``): the Step Functions compiler compiles those,
the local engine never runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from remediate.actions.requests import STEP_FAILED

# ---- values --------------------------------------------------------------------------

ROOTS = frozenset({"target", "params", "run", "vars", "it"})


@dataclass(frozen=True)
class Var:
    """A value read while the program runs: a dotted path (``vars.first.list[0]``)."""

    path: str

    def __post_init__(self) -> None:
        if self.path.split(".", 1)[0].split("[", 1)[0] not in ROOTS:
            raise ValueError(f"{self.path!r} starts with none of {', '.join(sorted(ROOTS))}")

    def __getattr__(self, name: str) -> Var:
        # Var("vars.instance").State.Name == Var("vars.instance.State.Name")
        if name.startswith("_"):
            raise AttributeError(name)
        return Var(f"{self.path}.{name}")

    def at(self, index: int) -> Var:
        return Var(f"{self.path}[{index}]")


@dataclass(frozen=True)
class Fmt:
    """Text made of literal parts and values (``Fmt(Var("target.id"), " is stopped")``)."""

    parts: tuple[Any, ...]

    def __init__(self, *parts: Any) -> None:
        object.__setattr__(self, "parts", parts)


@dataclass(frozen=True)
class Count:
    """How many items the list at ``of`` holds (0 when it is absent)."""

    of: Var


@dataclass(frozen=True)
class Plus:
    """The number at ``of`` plus ``n``."""

    of: Var
    n: int = 1


@dataclass(frozen=True)
class Item:
    """The item at ``index`` (a number, or a value read at run time) of the list at ``of``;
    None past its end. Step Functions' States.ArrayGetItem fails there instead: read only
    below the list's :class:`Count` (:mod:`remediate.actions.list_flows` does)."""

    of: Var
    index: Any


@dataclass(frozen=True)
class Put:
    """The mapping at ``mapping`` with ``key`` set to ``value`` (a tag list made a mapping,
    one tag at a time)."""

    mapping: Var
    key: Any
    value: Any


@dataclass(frozen=True)
class Sha256:
    """The SHA-256 of a text, as 64 lowercase hex digits: an idempotency token made of
    what identifies a call (run, target, step, attempt)."""

    of: Any


@dataclass(frozen=True)
class Arrival:
    """A value new each time a program gets to the call that reads it (locally a random
    nonce; on Step Functions the time the state was entered), the same across the
    engine's own resends of that call: what makes a :func:`token` per arrival."""


def token(*parts: Any) -> Sha256:
    """An idempotency token (64 hex digits) for one arrival at a call, made from ``parts``:
    the engine's own resends of the call carry the same one, while a program that gets
    there again (a reconciliation, a step's retry) gets a new one, so AWS, which answers
    a token with what it made for a day or more, never hands back a resource an earlier
    pass made and then gave up (a rescue instance terminated by a rollback, say)."""
    return Sha256(Fmt(*(piece for part in parts for piece in (part, ":")), Arrival()))


@dataclass(frozen=True)
class Script:
    """The lines SSM Run Command runs: one assignment per variable, its value quoted for
    ``shell`` ("powershell" or "sh"), then the script's own ``lines``, or those of
    ``file`` (relative to the playbook's folder; read when the step runs locally, at
    export for Step Functions, whose definition carries it). A value no quoting makes safe
    fails the step. On Step Functions a value known only at run time cannot be checked
    or quoted by the engine: only the variables named in ``plain`` (ids AWS handed out,
    which never need more than the shell's quotes) may have one; any other does not
    export."""

    shell: str
    variables: Mapping[str, Any]
    lines: tuple[str, ...] = ()
    file: str | None = None
    plain: frozenset[str] = frozenset()


Expr: TypeAlias = Any
"""A literal (str, int, float, bool, None, or a list/dict of Exprs), a :class:`Var`,
:class:`Fmt`, :class:`Count`, :class:`Plus`, :class:`Item`, :class:`Put`,
:class:`Sha256`, :class:`Arrival` or :class:`Script`."""


def var(path: str) -> Var:
    return Var(path)


TARGET_ID = Var("target.id")
RUN_FAILURE = Var("run.failure")
"""In a rollback step: the kind of the failure that started the rollback (a
:class:`Fail`'s ``kind``); absent elsewhere."""


# ---- predicates ----------------------------------------------------------------------


@dataclass(frozen=True)
class Eq:
    """``at`` is present and equals ``value`` (of the same type)."""

    at: Var
    value: Any


@dataclass(frozen=True)
class In:
    """``at`` is present and one of ``values``."""

    at: Var
    values: tuple[Any, ...]

    def __init__(self, at: Var, *values: Any) -> None:
        object.__setattr__(self, "at", at)
        object.__setattr__(self, "values", values)


@dataclass(frozen=True)
class Exists:
    """``at`` is present and not null (``yes=False``: absent or null)."""

    at: Var
    yes: bool = True


@dataclass(frozen=True)
class AtLeast:
    """``at`` is a number at least ``n``."""

    at: Var
    n: float


@dataclass(frozen=True)
class Same:
    """``at`` and ``other`` are both present, equal strings."""

    at: Var
    other: Var


@dataclass(frozen=True)
class All:
    preds: tuple[Pred, ...]

    def __init__(self, *preds: Pred) -> None:
        object.__setattr__(self, "preds", preds)


@dataclass(frozen=True)
class AnyOf:
    preds: tuple[Pred, ...]

    def __init__(self, *preds: Pred) -> None:
        object.__setattr__(self, "preds", preds)


@dataclass(frozen=True)
class Not:
    pred: Pred


@dataclass(frozen=True)
class Sent:
    """This step may already have sent ``operation`` for this target (an earlier attempt,
    a run that crashed, a reply AWS lost), so what it did must be looked for before it is
    sent again. Locally the journal knows; on Step Functions, the iteration's own record
    of the calls it made."""

    operation: str


@dataclass(frozen=True)
class Retried:
    """This step may have sent ``operation`` for this target in an earlier attempt or pass
    of the run, before a crash or with its reply lost, as far as the engine can tell:
    locally the journal knows (a fresh target's first attempt is not a retry); a Step
    Functions retry runs
    the step's branch afresh and cannot tell, so there it always holds (looking for what
    an earlier attempt made is never wrong, only a call more). Unlike :class:`Sent`,
    which Step Functions knows only after a lost reply, for a lookup that is skipped on
    a first attempt."""

    operation: str


@dataclass(frozen=True)
class Accepted:
    """The operator accepted findings of ``kind`` for this target (``--accept``): judged
    locally, and passed in at export (the definition is built for what was accepted)."""

    kind: str


Pred: TypeAlias = (Eq | In | Exists | AtLeast | Same | All | AnyOf | Not | Sent | Retried
                   | Accepted)


# ---- steps ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Read:
    """The record of ``resource`` (see :mod:`remediate.aws.resources`) with id ``id``, or
    null when AWS does not know it, stored at ``vars.<into>``. Locally many targets' reads
    share one Describe call."""

    into: str
    resource: str
    id: Expr


@dataclass(frozen=True)
class OnError:
    """What a :class:`Send` or :class:`Get` does when AWS answers one of ``codes`` (after
    the engine's own retries of throttling; :data:`ANY_ERROR` takes every error): run
    ``then`` instead of failing the step. ``into``: the error is stored at
    ``vars.<into>`` first, as ``{"Error": name, "Cause": text}`` (Step Functions'
    caught-error shape; locally the code, and ``"<code>: <message>"``), for a message
    that quotes AWS."""

    codes: tuple[str, ...]
    then: Seq
    into: str | None = None


ANY_ERROR = "*"


@dataclass(frozen=True)
class Get:
    """A call that changes nothing; ``pick`` names what to keep of its response (paths
    into it, ``Reservations[*].Instances[*]`` style), stored at ``vars.<into>`` (absent
    when an ``on_error`` handler took the call's error)."""

    into: str
    service: str
    operation: str
    params: Mapping[str, Expr]
    pick: Mapping[str, str]
    on_error: tuple[OnError, ...] = ()


@dataclass(frozen=True)
class Send:
    """A call that changes something. ``batch_key``: the list parameter the local engine
    may merge across targets. An AWS error fails the step (``on_error`` may take some
    codes); an outcome AWS did not tell (a 5xx, a timeout) is resent only where the
    operation is safe to repeat, else the step is run again from its start, reading
    AWS's state (see :class:`remediate.actions.requests.OutcomeUnknown`)."""

    service: str
    operation: str
    params: Mapping[str, Expr]
    batch_key: str | None = None
    into: str | None = None
    pick: Mapping[str, str] = field(default_factory=dict)
    note: Expr = ""
    on_error: tuple[OnError, ...] = ()
    # What the failure message names ("AttachVolume for <subject> failed: ..."); None:
    # the target.
    subject: Expr = None
    # Errors that say the resource is not in the state the call needs (VolumeInUse for
    # an AttachVolume): after this step's own call of the operation lost its reply, that
    # call is the likely cause, so the step reconciles (runs again from its start,
    # reading AWS's state, as after an unknown outcome) instead of failing. Without a
    # lost reply they fail the step as any error does. (Step Functions cannot tell EC2's
    # error codes apart: there, after a lost reply, any refusal of the call reconciles,
    # as many times as an unknown outcome at most.)
    reconcile_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class Await:
    """Poll ``resource`` ``id`` until ``until`` holds (its record is ``it``); each
    ``(pred, message)`` of ``fail`` that holds first fails the step with the message;
    after ``timeout`` seconds it fails naming ``what``. The last record read is stored at
    ``vars.<into>``. ``on_timeout``: run these steps instead of failing."""

    into: str
    resource: str
    id: Expr
    until: Pred
    timeout: Expr
    what: Expr
    fail: tuple[tuple[Pred, Expr], ...] = ()
    exits: tuple[tuple[Pred, Seq], ...] = ()
    on_timeout: Seq | None = None


@dataclass(frozen=True)
class Find:
    """The first item of the list at ``items`` whose ``key`` is the string ``value``
    (the block device at a device name, the tag with a key), or null when none is (or
    there is no list), stored at ``vars.<into>``."""

    into: str
    items: Var
    key: str
    value: Expr


@dataclass(frozen=True)
class If:
    """The first ``(pred, steps)`` that holds runs its steps; none: ``orelse``."""

    cases: tuple[tuple[Pred, Seq], ...]
    orelse: Seq = ()


@dataclass(frozen=True)
class Loop:
    """Run ``body`` while ``pred`` holds (checked before each round)."""

    pred: Pred
    body: Seq


@dataclass(frozen=True)
class Set:
    """Store a value at ``vars.<into>``."""

    into: str
    value: Expr


@dataclass(frozen=True)
class Pause:
    """Wait ``seconds`` on the run's clock."""

    seconds: Expr


@dataclass(frozen=True)
class Fail:
    """End the step, failed, with ``message`` (a human reads it). ``kind`` names the
    failure for the executor (:class:`~remediate.actions.requests.StepFailed`):
    ``UNTOUCHED`` declares the step left the target as it found it (it ends refused, not
    rolled back); another kind is what a rollback reads at ``run.failure``."""

    message: Expr
    kind: str = STEP_FAILED


@dataclass(frozen=True)
class Done:
    """End the step, succeeded, with these outputs."""

    outputs: Mapping[str, Expr] = field(default_factory=dict)


@dataclass(frozen=True)
class Native:
    """An escape hatch: logic only the local engine can run.

    ``local(ctx, params, scope)`` is a generator of the executor's requests (like an
    action's ``run``) returning a mapping stored at ``vars.<into>``; ``asl(compiler,
    path, next)`` builds the Step Functions counterpart (states that store their result
    at the same place and go on to the state named ``next``) and returns its entry, or
    raises NotExportable saying why there is none. ``why`` says why this cannot be a
    program.

    ``counterpart`` (with ``asl=None``): the Step Functions counterpart as program
    steps, compiled in the Native's place; they store ``vars.<into>`` themselves (a
    :class:`Set` of a mapping, say) in the shape ``local`` returns, as far as the
    program reads it. The local engine never runs them.
    """

    name: str
    into: str
    local: Callable[..., Any]
    asl: Callable[..., Any] | None
    why: str
    counterpart: Seq | None = None

    def __post_init__(self) -> None:
        if (self.asl is None) == (self.counterpart is None):
            raise ValueError(f"Native {self.name}: give asl or counterpart, not both")


Step = Read | Get | Send | Await | Find | If | Loop | Set | Pause | Fail | Done | Native
Seq: TypeAlias = Sequence[Step]
Program: TypeAlias = tuple[Step, ...]


def flag(into: str, pred: Pred) -> If:
    """``vars.<into>``: True if ``pred`` holds, else False."""
    return If(((pred, (Set(into, True),)),), orelse=(Set(into, False),))


def program(*steps: Step) -> Program:
    """A checked program (see :func:`check`)."""
    built = tuple(steps)
    check(built)
    return built


def check(steps: Seq, where: str = "program") -> None:
    """Nothing follows a Done or a Fail; every nested sequence too."""
    for index, step in enumerate(steps):
        if isinstance(step, Done | Fail) and index != len(steps) - 1:
            raise ValueError(f"{where}[{index}]: {type(step).__name__} is followed by "
                             f"{type(steps[index + 1]).__name__}, which could never run")
        for label, nested in children(step):
            check(nested, f"{where}[{index}].{label}")


def children(step: Step) -> list[tuple[str, Seq]]:
    """The sequences a step holds, labelled."""
    if isinstance(step, If):
        return [*((f"case{i}", body) for i, (_, body) in enumerate(step.cases)),
                ("else", step.orelse)]
    if isinstance(step, Loop):
        return [("body", step.body)]
    if isinstance(step, Send | Get):
        return [(f"on{i}", handler.then) for i, handler in enumerate(step.on_error)]
    if isinstance(step, Await):
        nested = [(f"exit{i}", body) for i, (_, body) in enumerate(step.exits)]
        if step.on_timeout is not None:
            nested.append(("timeout", step.on_timeout))
        return nested
    if isinstance(step, Native) and step.counterpart is not None:
        return [("sfn", step.counterpart)]
    return []


def walk(steps: Seq) -> list[Step]:
    """Every step, nested ones included, in order."""
    out: list[Step] = []
    for step in steps:
        out.append(step)
        for _, nested in children(step):
            out.extend(walk(nested))
    return out


def sends(steps: Seq) -> list[Send]:
    """Every call that changes something the program may make."""
    return [step for step in walk(steps) if isinstance(step, Send)]
