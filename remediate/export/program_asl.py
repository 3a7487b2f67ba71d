"""An action's program as Amazon States Language: the Step Functions reading of it.

Each step of the program becomes a few states; their names are the step's id, the
node's place in the program (``stop.p.2.case0.1``) and the state's role, so no two
states can share a name, and a state is only emitted when something leads to it,
so none is unreachable. The result is the branch of the step's Parallel state (see
:mod:`remediate.export.iteration`): ``Done`` is its last state, ``Fail`` ends it
with ``remediate.StepFailed``.

Where the program keeps values: a step's scratch space ``$.r``; ``vars.x`` of a
``Read``, ``Await``, ``Set`` or ``Find`` is ``$.r.x.v`` (Step Functions stores objects),
of a ``Get``, ``Send``, ``Native`` or an ``OnError``'s ``into`` (named picks)
``$.r.x.<name>``; ``params.x`` is
bound now (the playbook's parameters are bound at export) or a JSONPath into the
iteration's state; ``target.x`` is ``$.target.x``; ``run.step`` is known now.

Two things moto's interpreter reads differently from AWS are compiled around, so no
program can trip on them: a path ending in ``[n].Field`` (moto answers a one-element
list) into an Await's record (``it``) is read from a copy of the element the poll
makes; and text an intrinsic function's string literal would have to escape (``'``
``{`` ``}`` ``\\``, which moto's lexer does not unescape) is carried as data
(``$.r.lit``, set when the program starts) and read from there.

An outcome AWS did not tell (a 5xx, a timeout) is handled as the local engine does:
a call safe to repeat is retried; any other is not sent again: ``$.r.sent.<op>``
records that it may have gone, and the program starts again from its first state,
reading AWS's state (:class:`remediate.actions.program.Sent` is then true), at most
``RECONCILE_LIMIT`` times. A call with ``reconcile_on`` that AWS refuses after that
starts it again too (see :meth:`ProgramCompiler._send`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from remediate.actions.contract import Action
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
    walk,
)
from remediate.actions.programmed import ProgramAction
from remediate.actions.requests import StepFailed
from remediate.actions.script_files import read_script
from remediate.actions.script_lines import assignment, build_script
from remediate.aws.apis import operation as api_operation
from remediate.aws.errors import THROTTLING_CODES
from remediate.aws.resources import HOLD_TAG
from remediate.export import asl
from remediate.export.asl import Ref, Rule, State, States
from remediate.export.fragment import WAIT_TIMEOUT, AslStep, Fragment
from remediate.language.durations import format_duration
from remediate.language.quoting import UnsafeValue

RECONCILE_LIMIT: Final = 5
_ROOT: Final = re.compile(r"([a-z]+)(.*)")
_NAME: Final = re.compile(r"\.([A-Za-z0-9_]+)(.*)")
# Runs of the characters an intrinsic function's string literal must escape.
_ESCAPED: Final = re.compile(r"(['{}\\]+)")
# A path's tail moto reads as a one-element list: ``<element>[n]`` then ``.Field``.
_ELEMENT_FIELD: Final = re.compile(r"(.*\[\d+\])(\.\w+)")
UNKNOWN_OUTCOME: Final = "remediate.OutcomeUnknown"
Decided = Rule | bool


@dataclass(frozen=True)
class ReadSpec:
    """How one record of a resource is read on Step Functions: the call, a list in its
    response (a path with at most one wildcard, so an empty answer is an empty list),
    and where the record is in that list's first item."""

    service: str
    operation: str
    request: Callable[[Any], dict[str, Any]]
    items: str
    record: str = "[0]"
    # What is present at ``items`` when the record exists ("": the call's answer is the
    # record itself, and AWS fails the call when there is none).
    present: str = "[0]"


def _filter(name: str) -> Callable[[Any], dict[str, Any]]:
    return lambda rid: {"Filters": [{"Name": name, "Values": [rid]}]}


def _split(rid: Any, index: int) -> Any:
    """Part ``index`` of an id ``a:b`` (a literal, or a value read at run time)."""
    if isinstance(rid, str):
        return rid.split(":", 1)[index]
    return Ref(f"States.ArrayGetItem(States.StringSplit({asl.arg(rid)}, ':'), {index})")


READS: Final[Mapping[str, ReadSpec]] = {
    "instance": ReadSpec("ec2", "DescribeInstances", _filter("instance-id"), "$.Reservations[*]",
                         "[0].Instances[0]"),
    "instance-status": ReadSpec("ec2", "DescribeInstanceStatus", lambda rid: {
        "InstanceIds": [rid], "IncludeAllInstances": True}, "$.InstanceStatuses"),
    "volume": ReadSpec("ec2", "DescribeVolumes", _filter("volume-id"), "$.Volumes"),
    "snapshot": ReadSpec("ec2", "DescribeSnapshots", _filter("snapshot-id"), "$.Snapshots"),
    "image": ReadSpec("ec2", "DescribeImages", _filter("image-id"), "$.Images"),
    "replace-root-task": ReadSpec("ec2", "DescribeReplaceRootVolumeTasks", lambda rid: {
        "ReplaceRootVolumeTaskIds": [rid]}, "$.ReplaceRootVolumeTasks"),
    "workspace": ReadSpec("workspaces", "DescribeWorkspaces", lambda rid: {
        "WorkspaceIds": [rid]}, "$.Workspaces"),
    "ssm-agent": ReadSpec("ssm", "DescribeInstanceInformation", lambda rid: {
        "Filters": [{"Key": "InstanceIds", "Values": [rid]}]}, "$.InstanceInformationList"),
    "capacity-hold": ReadSpec("ec2", "DescribeCapacityReservations", lambda rid: {
        "Filters": [{"Name": f"tag:{HOLD_TAG}", "Values": [rid]},
                    {"Name": "state", "Values": ["active"]}]}, "$.CapacityReservations"),
    # "<command-id>:<instance-id>", as remediate.aws.resources names it.
    "command-invocation": ReadSpec("ssm", "GetCommandInvocation", lambda rid: {
        "CommandId": _split(rid, 0), "InstanceId": _split(rid, 1)}, "$", "", ""),
}


class ProgramCompiler:
    """Compiles one step's program; see the module's docstring."""

    def __init__(self, step: AslStep, program: Program) -> None:
        self.step = step
        self.program = program
        self.states: States = {}
        self.values: set[str] = set()  # vars stored as {"v": ...}
        self.picks: set[str] = set()  # vars stored as {name: ...}
        self._register(program)
        self.start = self.name("p", "start")
        self.begin = self.name("p", "begin")
        self._it: list[str] = []  # the Await whose record ``it`` names
        # Per Await being compiled: the elements of ``it`` read through a copy (path of
        # the element -> where its copy is kept).
        self._copies: list[dict[str, str]] = []
        self.literals: dict[str, str] = {}  # text carried as data -> its key in $.r.lit

    def _register(self, steps: Seq) -> None:
        """Note where each var of ``steps`` is kept (a value, or named picks)."""
        for node in walk(steps):
            if isinstance(node, Read | Await | Set | Find):
                self.values.add(node.into)
            elif (isinstance(node, Get) or (isinstance(node, Send) and node.into)
                  or (isinstance(node, Native) and node.counterpart is None)):
                # A Native with a counterpart: its counterpart's steps store vars.<into>.
                self.picks.add(str(node.into))
            if isinstance(node, Send):
                self.picks.update(h.into for h in node.on_error if h.into is not None)
        both = self.values & self.picks
        if both:
            raise ValueError(f"{self.step.action}: vars {', '.join(sorted(both))} are stored "
                             "both as values and as picks")

    # ---- names and paths ---------------------------------------------------------

    def name(self, path: str, role: str = "") -> str:
        return f"{self.step.step_id}.{path}" + (f".{role}" if role else "")

    def add(self, name: str, state: State) -> str:
        if name in self.states:  # a compiler bug: names follow the program's shape
            raise AssertionError(f"state {name} compiled twice")
        self.states[name] = state
        return name

    def path(self, var: Var) -> str | Any:
        """The JSONPath a Var reads, or its value when it is known now (params)."""
        head, rest = _ROOT.match(var.path).groups()  # type: ignore[union-attr]
        if head == "params":
            value = self._param(rest.lstrip("."))
            # A value known only at run time is read where it is.
            return value.expr if isinstance(value, Ref) and value.expr.startswith("$") \
                else value
        if head == "target":
            return "$.target" + rest
        if head == "run":
            known = {".step": self.step.step_id, ".base_dir": self.step.base_dir}
            if rest == ".failure":  # the failed step's error, kept by its Catch
                return "$.error.Error"
            return known[rest] if rest in known else "$.run" + rest
        if head == "it":
            if not self._it:
                raise ValueError(f"{var.path}: 'it' outside an Await")
            tail = _ELEMENT_FIELD.fullmatch(rest)
            if tail is None:
                return self._var_base(self._it[-1]) + rest
            element, field = tail.groups()
            copies = self._copies[-1]
            where = copies.setdefault(element, f"$.r.{self._it[-1]}_copy{len(copies)}")
            return f"{where}.e{field}"
        name, more = _NAME.match(rest).groups()  # type: ignore[union-attr]
        return self._var_base(name) + more

    def _var_base(self, name: str) -> str:
        return f"$.r.{name}.v" if name in self.values else f"$.r.{name}"

    def _param(self, rest: str) -> Any:
        value: Any = self.step.params
        for part in rest.split("."):
            if isinstance(value, Ref):
                return Ref(f"{value.expr}.{part}")
            value = value.get(part) if isinstance(value, Mapping) else None
        return value

    def expr(self, value: Any) -> Any:
        """An expression as a payload value: a literal, or a Ref read at run time."""
        if isinstance(value, Var):
            found = self.path(value)
            return asl.path(found) if isinstance(found, str) and found.startswith("$") \
                else found
        if isinstance(value, Fmt):
            return self._fmt([self.expr(p) for p in _flat(value)])
        if isinstance(value, Count):
            return Ref(f"States.ArrayLength({self._ref_path(value.of)})")
        if isinstance(value, Plus):
            return asl.add(Ref(self._ref_path(value.of)), value.n)
        if isinstance(value, Item):
            return Ref(f"States.ArrayGetItem({self._ref_path(value.of)}, "
                       f"{asl.arg(self.expr(value.index))})")
        if isinstance(value, Put):
            return self._put(value)
        if isinstance(value, Sha256):
            return Ref(f"States.Hash({asl.arg(self.expr(value.of))}, 'SHA-256')")
        if isinstance(value, Arrival):
            return Ref("$$.State.EnteredTime")
        if isinstance(value, Script):
            return self._script(value)
        if isinstance(value, Mapping):
            return {k: self.expr(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return self._list([self.expr(v) for v in value])
        return value

    def _put(self, put: Put) -> Ref:
        """States.JsonMerge of the mapping and a one-key object parsed from text. The
        object's braces are carried as data (see :meth:`_carried`): an intrinsic's string
        literal must escape them, which moto's reading of intrinsics does not take (see
        :mod:`remediate.export.asl`)."""
        opening, closing = asl.arg(self._carried("{")), asl.arg(self._carried("}"))

        def json_text(value: Any) -> str:
            found = self.expr(value)
            if isinstance(found, Ref):
                return f"States.JsonToString({found.expr})"
            return asl.literal(json.dumps(found))

        one = (f"States.StringToJson(States.Format('{{}}{{}}:{{}}{{}}', {opening}, "
               f"{json_text(put.key)}, {json_text(put.value)}, {closing}))")
        return Ref(f"States.JsonMerge({self._ref_path(put.mapping)}, {one}, false)")

    def _fmt(self, parts: list[Any]) -> Any:
        if all(not isinstance(p, Ref) for p in parts):
            return "".join(_text(p) for p in parts)
        # Only the characters a literal would have to escape are carried as data.
        pieces = [piece for p in parts
                  for piece in ([p] if isinstance(p, Ref) else _ESCAPED.split(_text(p)))]
        return asl.fmt(*[self._carried(p) if isinstance(p, str) else p for p in pieces if p])

    def _list(self, items: list[Any]) -> list[Any]:
        """A list read at run time becomes ``States.Array``: its text must survive that."""
        if not any(isinstance(item, Ref) for item in items):
            return items
        return [self._carried(item) if isinstance(item, str) else item for item in items]

    def _carried(self, text: str) -> str | Ref:
        """``text`` as an intrinsic function may hold it: as is, or read from $.r.lit."""
        if asl.text(text) == text:
            return text
        key = self.literals.setdefault(text, f"t{len(self.literals)}")
        return Ref(f"$.r.lit.{key}")

    def _script(self, script: Script) -> list[Any]:
        try:
            body = (read_script(self.step.base_dir, script.file) if script.file is not None
                    else list(script.lines))
        except StepFailed as exc:
            raise self.step.unsupported(str(exc)) from exc
        lines: list[Any] = []
        for name, value in script.variables.items():
            found = self.expr(value)
            if not isinstance(found, Ref):
                try:
                    lines.extend(build_script(script.shell, {name: str(found)}, []))
                except UnsafeValue as exc:
                    raise self.step.unsupported(f"parameters: {exc}") from exc
            elif name in script.plain:
                # An id AWS handed out: the shell's quotes are all it needs.
                lines.append(self._fmt([assignment(script.shell, name, "'"), found, "'"]))
            else:
                raise self.step.unsupported(
                    f"the script's variable {name} is only known at run time, and Step "
                    "Functions cannot quote a value for a shell: give it a literal value")
        return self._list([*lines, *body])

    def _ref_path(self, var: Var) -> str:
        found = self.path(var)
        if not (isinstance(found, str) and found.startswith("$")):
            raise ValueError(f"{var.path} is known at export; it cannot be counted")
        return found

    # ---- predicates --------------------------------------------------------------

    def _runtime(self, var: Var) -> tuple[str | None, Any]:
        """(the JSONPath ``var`` is read at, or None when its value is known now, which is
        then the second item)."""
        found = self.path(var)
        if isinstance(found, Ref):
            if not found.expr.startswith("$"):
                raise self.step.unsupported(f"{var.path} is made at run time ({found.expr}); "
                                            "a condition can only read a value")
            return found.expr, None
        if isinstance(found, str) and found.startswith("$"):
            return found, None
        return None, found

    def rule(self, pred: Pred) -> Decided:
        if isinstance(pred, Eq | In | AtLeast):
            at, known = self._runtime(pred.at)
            if at is None:
                return _decide(pred, known)
            found = at
            if isinstance(pred, Eq):
                return asl.equals(found, pred.value)
            if isinstance(pred, In):
                return asl.one_of(found, list(pred.values)) if pred.values else False
            return asl.all_of(asl.present(found),
                              {"Variable": found, "IsNumeric": True},
                              asl.at_least(found, pred.n))
        if isinstance(pred, Exists):
            where, known = self._runtime(pred.at)
            if where is None:
                return (known is not None) == pred.yes
            there = asl.all_of(asl.present(where),
                               asl.negate({"Variable": where, "IsNull": True}))
            return there if pred.yes else asl.negate(there)
        if isinstance(pred, Same):
            (one, known), (other, also) = self._runtime(pred.at), self._runtime(pred.other)
            if one is None and other is None:
                return isinstance(known, str) and known == also
            if one is None or other is None:  # one side known now: equal to that string
                value = known if one is None else also
                return asl.equals(str(other or one), value) if isinstance(value, str) \
                    else False
            return asl.same_as(one, other)
        if isinstance(pred, Accepted):
            return pred.kind in self.step.accepted
        if isinstance(pred, Retried):
            return True  # a retried branch starts afresh: it cannot tell (see Retried)
        if isinstance(pred, Sent):
            return asl.all_of(asl.present(f"$.r.sent.{pred.operation}"),
                              asl.negate({"Variable": f"$.r.sent.{pred.operation}",
                                          "IsNull": True}))
        if isinstance(pred, Not):
            inner = self.rule(pred.pred)
            return (not inner) if isinstance(inner, bool) else asl.negate(inner)
        if isinstance(pred, All | AnyOf):
            decisive = isinstance(pred, AnyOf)
            rules = [self.rule(p) for p in pred.preds]
            if any(r is decisive for r in rules):
                return decisive
            left = [r for r in rules if not isinstance(r, bool)]
            if not left:
                return not decisive
            return asl.any_of(*left) if decisive else asl.all_of(*left)
        raise TypeError(f"not a predicate: {pred!r}")

    def branch(self, cases: Sequence[tuple[Pred, str]], default: str, where: str) -> str:
        """A Choice over ``cases`` (decided ones folded in); its entry (``where``, or the
        only target when nothing is left to decide at run time)."""
        rules: list[tuple[Rule, str]] = []
        for pred, target in cases:
            decided = self.rule(pred)
            if decided is True:
                if not rules:
                    return target
                default = target
                break
            if decided is not False:
                rules.append((decided, target))
        if not rules:
            return default
        return self.add(where, asl.choice(rules, default))

    # ---- the program ---------------------------------------------------------------

    def compile(self) -> Fragment:
        end = self.name("p", "end")
        entry = self.seq(self.program, "p", end)
        if end not in self.states:
            self.add(end, self.step.done({}))
        # Reconciliation starts the program again at `begin`; its counters live at
        # $.r.count, set once, before it (and the text it carries as data, see _carried).
        self.add(self.begin, asl.pass_state(entry, result=None, result_path=None))
        first = self.begin
        if self.literals:
            first = self.add(self.name("p", "text"), asl.pass_state(
                self.begin, result={key: text for text, key in self.literals.items()},
                result_path="$.r.lit"))
        self.add(self.start, asl.pass_state(first, result={"reconciled": 0},
                                            result_path="$.r.count"))
        return Fragment(self.start, reachable(self.start, self.states))

    def seq(self, steps: Seq, path: str, nxt: str) -> str:
        """The states of ``steps`` (each going on to the next, the last to ``nxt``); the
        sequence's entry."""
        entry = nxt
        for index in range(len(steps) - 1, -1, -1):
            entry = self.node(steps[index], f"{path}.{index}", entry)
        return entry

    def node(self, node: Any, path: str, nxt: str) -> str:
        name = self.name(path)
        if isinstance(node, Read):
            return self._read(node, path, nxt)
        if isinstance(node, Get):
            catch: list[Rule] = []
            if node.on_error:
                error_at = _error_at(path)
                failed = self.add(self.name(path, "failed"), self.step.failure(asl.fmt(
                    f"{node.operation} failed: ", asl.path(f"{error_at}.Cause"))))
                route = self.add(self.name(path, "route"), asl.choice(
                    self._handlers(node.on_error, path, nxt, error_at), failed))
                catch = [{"ErrorEquals": ["States.ALL"], "ResultPath": error_at,
                          "Next": route}]
            return self.add(name, asl.task(
                node.service, node.operation, self.expr(dict(node.params)), nxt,
                select={k: Ref(_response_path(v)) for k, v in node.pick.items()},
                result_path=f"$.r.{node.into}", catch=catch))
        if isinstance(node, Send):
            return self._send(node, path, nxt)
        if isinstance(node, Await):
            return self._await(node, path, nxt)
        if isinstance(node, Find):
            return self._find(node, path, nxt)
        if isinstance(node, If):
            cases = [(pred, self.seq(body, f"{path}.case{i}", nxt))
                     for i, (pred, body) in enumerate(node.cases)]
            default = self.seq(node.orelse, f"{path}.else", nxt)
            return self.branch(cases, default, name)
        if isinstance(node, Loop):
            check = name
            body = self.seq(node.body, f"{path}.body", check)
            decided = self.rule(node.pred)
            if decided is True:
                raise ValueError(f"{self.step.action}: a loop whose condition always holds")
            if decided is False:
                return nxt
            return self.add(check, asl.choice([(decided, body)], nxt))
        if isinstance(node, Set):
            value = self.expr(node.value)
            store = asl.pass_state(nxt, parameters={"v": value}, result_path=f"$.r.{node.into}")
            if not (isinstance(node.value, Var) and isinstance(value, Ref)) or "[*]" in value.expr:
                # (A path with a wildcard reads as a list, empty when nothing matches; a
                # Choice could not test it: its Variable is a reference path.)
                return self.add(name, store)
            # A path that may be absent reads as null (Step Functions fails on it).
            self.add(self.name(path, "value"), store)
            self.add(self.name(path, "null"), asl.pass_state(
                nxt, result={"v": None}, result_path=f"$.r.{node.into}"))
            return self.add(name, asl.choice([(asl.present(value.expr),
                                               self.name(path, "value"))],
                                             self.name(path, "null")))
        if isinstance(node, Pause):
            seconds = self.expr(node.seconds)
            if isinstance(seconds, Ref):
                return self.add(name, {"Type": "Wait", "SecondsPath": seconds.expr,
                                       "Next": nxt})
            return self.add(name, asl.wait(int(seconds), nxt))
        if isinstance(node, Fail):
            return self.add(name, self.step.failure(self.expr(node.message), node.kind))
        if isinstance(node, Done):
            return self.add(name, self.step.done(self.expr(dict(node.outputs))))
        if isinstance(node, Native):
            if node.counterpart is not None:
                return self.seq(node.counterpart, f"{path}.sfn", nxt)
            assert node.asl is not None
            entry: str = node.asl(self, path, nxt)
            return entry
        raise TypeError(f"not a program step: {node!r}")

    def _read(self, node: Read, path: str, nxt: str) -> str:
        spec = READS[node.resource]
        into = f"$.r.{node.into}"
        found, missing = self.name(path, "found"), self.name(path, "missing")
        check = self.name(path, "check")
        self.add(found, asl.pass_state(nxt, parameters={"v": Ref(f"{into}.items{spec.record}")},
                                       result_path=into))
        self.add(missing, asl.pass_state(nxt, result={"v": None}, result_path=into))
        self.add(check, asl.choice([(asl.present(f"{into}.items{spec.present}"), found)],
                                   missing))
        return self.add(self.name(path), asl.task(
            spec.service, spec.operation, spec.request(self.expr(node.id)), check,
            select={"items": Ref(spec.items)}, result_path=into))

    def _send(self, node: Send, path: str, nxt: str) -> str:
        name = self.name(path)
        op = api_operation(node.service, node.operation)
        request = self.expr(dict(node.params))
        select = ({k: Ref(_response_path(v)) for k, v in node.pick.items()}
                  if node.into else None)
        result_path = f"$.r.{node.into}" if node.into else None
        error_at = _error_at(path)
        handlers = self._handlers(node.on_error, path, nxt, error_at)
        subject = asl.path("$.target.id") if node.subject is None else self.expr(node.subject)
        failed = self.add(self.name(path, "failed"), self.step.failure(asl.fmt(
            f"{node.operation} for ", subject, " failed: ", asl.path(f"{error_at}.Cause"))))
        resend = op.on_unknown == "resend" or (op.token is not None and op.token in request)
        routes: list[tuple[Rule, str]] = []
        unknown_routes: list[tuple[Rule, str]] = []
        if not resend:
            # Unknown outcome: not sent again; start over, reading AWS's state.
            counter = "$.r.count.reconciled"
            again = self.add(self.name(path, "reconcile"), asl.pass_state(
                self.begin, parameters={"reconciled": asl.add(asl.path(counter), 1)},
                result_path="$.r.count"))
            mark = self.add(self.name(path, "sent"), asl.pass_state(
                again, result=True, result_path=f"$.r.sent.{node.operation}"))
            unsettled = self.add(self.name(path, "unsettled"), asl.fail(UNKNOWN_OUTCOME, asl.fmt(
                f"{node.operation} for ", asl.path("$.target.id"), " outcome unknown (",
                asl.path(f"{error_at}.Cause"), "); AWS's state did not settle it after "
                f"{RECONCILE_LIMIT} reconciliations")))
            spent = asl.at_least(counter, RECONCILE_LIMIT)
            if node.reconcile_on:
                # An error this step's own lost call may explain: reconcile
                # (Send.reconcile_on). Which error it is cannot be told here: EC2's come
                # as Ec2.Ec2Exception with AWS's message as the cause, no code; so after
                # a lost reply every refusal reconciles, RECONCILE_LIMIT times at most.
                own = _rule(self.rule(Sent(node.operation)))
                routes += [(asl.all_of(own, spent), unsettled), (own, mark)]
            unknown = _server_error(error_at)
            unknown_routes = [(asl.all_of(unknown, spent), unsettled), (unknown, mark)]
        routes += [*handlers, *unknown_routes]
        route = self.add(self.name(path, "route"), asl.choice(routes, failed)) if routes \
            else failed
        state = asl.task(node.service, node.operation, request, nxt, select=select,
                         result_path=result_path,
                         catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": error_at,
                                 "Next": route}])
        if not resend:
            state["Retry"] = _throttle_retry(node.service)
        return self.add(name, state)

    def _find(self, node: Find, path: str, nxt: str) -> str:
        """An inline Map over the list keeps the matching items (a JSONPath filter could
        only compare with a literal, and moto fails one that matches nothing); the first
        is the value."""
        into = f"$.r.{node.into}"
        items = self.path(node.items)
        if not (isinstance(items, str) and items.startswith("$")):
            raise ValueError(f"{node.items.path}: Find searches a list read at run time")
        value = self.expr(node.value)
        test, match, other = (self.name(path, role) for role in ("test", "match", "other"))
        selector: dict[str, Any] = {"m.$": "$$.Map.Item.Value"}
        if isinstance(value, Ref):
            selector["want.$"] = value.expr
            wanted = asl.same_as(f"$.m.{node.key}", "$.want")
        else:
            wanted = asl.equals(f"$.m.{node.key}", value)
        none = self.add(self.name(path, "none"), asl.pass_state(nxt, result={"v": None},
                                                                result_path=into))
        first = self.add(self.name(path, "first"), asl.pass_state(
            nxt, parameters={"v": Ref(f"{into}.found[0]")}, result_path=into))
        pick = self.add(self.name(path, "pick"), asl.choice(
            [(asl.present(f"{into}.found[0]"), first)], none))
        search = self.add(self.name(path, "map"), {
            "Type": "Map", "ItemsPath": items, "ItemSelector": selector,
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": test,
                "States": {
                    test: asl.choice([(wanted, match)], other),
                    match: asl.pass_state(None, parameters={"v": Ref("$.m")}),
                    other: asl.pass_state(None, result={}),
                }},
            "ResultSelector": {"found.$": "$[*].v"},
            "ResultPath": into,
            "Next": pick,
        })
        return self.add(self.name(path), asl.choice(
            [(_rule(self.rule(Exists(node.items))), search)], none))

    def _handlers(self, on_error: Sequence[OnError], path: str, nxt: str,
                  error_at: str) -> list[tuple[Rule, str]]:
        """Choice rules sending a caught error (at ``error_at``) to its handler's steps."""
        handlers: list[tuple[Rule, str]] = []
        for index, handler in enumerate(on_error):
            entry = self.seq(handler.then, f"{path}.on{index}", nxt)
            if handler.into is not None:
                entry = self.add(self.name(f"{path}.on{index}", "error"), asl.pass_state(
                    entry, parameters={"Error": Ref(f"{error_at}.Error"),
                                       "Cause": Ref(f"{error_at}.Cause")},
                    result_path=f"$.r.{handler.into}"))
            handlers.append((asl.any_of(*(_cause_has(error_at, code)
                                          for code in handler.codes)), entry))
        return handlers

    def _await(self, node: Await, path: str, nxt: str) -> str:
        spec = READS[node.resource]
        into = f"$.r.{node.into}"
        timeout = float(self.expr(node.timeout))
        polls = self.step.polls(timeout)
        counter = f"$.r.{node.into}_polls.n"
        get, check = self.name(path, "get"), self.name(path, "check")
        found, missing = self.name(path, "found"), self.name(path, "missing")
        nap, count = self.name(path, "sleep"), self.name(path, "count")
        self._it.append(node.into)
        self._copies.append({})
        try:
            branches: list[tuple[Pred, str]] = [(node.until, nxt)]
            for index, (pred, message) in enumerate(node.fail):
                target = self.add(self.name(path, f"failed{index}"),
                                  self.step.failure(self.expr(message)))
                branches.append((pred, target))
            for index, (pred, body) in enumerate(node.exits):
                branches.append((pred, self.seq(body, f"{path}.exit{index}", nxt)))
            if node.on_timeout is not None:
                late = self.seq(node.on_timeout, f"{path}.timeout", nxt)
            else:
                # What it waited for, read at run time where it names values: one Format.
                what = [self.expr(p) for p in (_flat(node.what) if isinstance(node.what, Fmt)
                                               else [node.what])]
                late = self.add(self.name(path, "timed-out"), asl.fail(WAIT_TIMEOUT, asl.fmt(
                    *(p if isinstance(p, Ref) else _text(p) for p in what),
                    f" not reached after {format_duration(timeout)}; last seen: ",
                    asl.as_text(asl.path(f"{into}.v")))))
            rules: list[tuple[Rule, str]] = []
            for pred, target in branches:
                decided = self.rule(pred)
                if decided is True:
                    raise ValueError(f"{self.step.action}: an Await decided at export")
                if decided is not False:
                    rules.append((decided, target))
            rules.append((asl.at_least(counter, polls), late))
            self.add(check, asl.choice(rules, nap))
        finally:
            self._it.pop()
            copies = self._copies.pop()
        self.add(nap, asl.wait(self.step.poll_seconds, count))
        self.add(count, asl.pass_state(get, parameters={
            "n": asl.add(asl.path(counter), 1)}, result_path=f"$.r.{node.into}_polls"))
        read = self._copy(copies, f"{into}.v", path, check)
        self.add(found, asl.pass_state(read, parameters={
            "v": Ref(f"{into}.items{spec.record}")}, result_path=into))
        self.add(missing, asl.pass_state(read, result={"v": None}, result_path=into))
        self.add(self.name(path, "pick"), asl.choice(
            [(asl.present(f"{into}.items{spec.present}"), found)], missing))
        self.add(get, asl.task(spec.service, spec.operation, spec.request(self.expr(node.id)),
                               self.name(path, "pick"), select={"items": Ref(spec.items)},
                               result_path=into))
        return self.add(self.name(path), asl.pass_state(get, result={"n": 0},
                                                        result_path=f"$.r.{node.into}_polls"))

    def _copy(self, copies: Mapping[str, str], record: str, path: str, nxt: str) -> str:
        """States that copy each element of ``copies`` out of the record just read (null
        when it has none), then go to ``nxt``; their entry."""
        entry = nxt
        for index, (element, where) in reversed(list(enumerate(copies.items()))):
            value, null = self.name(path, f"copy{index}"), self.name(path, f"copy{index}.none")
            self.add(value, asl.pass_state(entry, parameters={"e": Ref(record + element)},
                                           result_path=where))
            self.add(null, asl.pass_state(entry, result={"e": None}, result_path=where))
            entry = self.add(self.name(path, f"copy{index}.has"), asl.choice(
                [(asl.present(record + element), value)], null))
        return entry


def _rule(decided: Decided) -> Rule:
    """A rule read at run time (a predicate decided at export here is a program bug)."""
    if isinstance(decided, bool):
        raise ValueError("a predicate decided at export where one read at run time is needed")
    return decided


def _flat(fmt: Fmt) -> list[Any]:
    """A Fmt's parts, those of Fmts inside it spliced in (one States.Format)."""
    return [q for p in fmt.parts for q in (_flat(p) if isinstance(p, Fmt) else [p])]


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return "true" if value is True else "false" if value is False else "null"
    return str(value)


def _decide(pred: Eq | In | AtLeast, found: Any) -> bool:
    if isinstance(pred, Eq):
        return found == pred.value and type(found) is type(pred.value)
    if isinstance(pred, In):
        return found in pred.values
    return isinstance(found, int | float) and found >= pred.n


def _error_at(path: str) -> str:
    """Where the error a call's Catch took is kept."""
    return f"$.r.error_{path.replace('.', '_')}"


def _cause_has(error_at: str, code: str) -> Rule:
    """The caught error names ``code``: an SDK integration reports EC2's errors under one
    name (``Ec2.Ec2Exception``), the code only in the cause. :data:`ANY_ERROR`: any."""
    if code == ANY_ERROR:
        return asl.present(f"{error_at}.Error")
    return {"Or": [{"Variable": f"{error_at}.Cause", "StringMatches": f"*{code}*"},
                   {"Variable": f"{error_at}.Error", "StringMatches": f"*{code}*"}]}


def _server_error(error_at: str) -> Rule:
    """AWS answered 5xx, or not at all: what the call did is unknown. The SDK integration's
    cause ends "(Service: Ec2, Status Code: 500, Request ID: ...)"."""
    return asl.any_of({"Variable": f"{error_at}.Cause", "StringMatches": "*Status Code: 5*"},
                      {"Variable": f"{error_at}.Error", "StringEquals": "States.Timeout"})


def reachable(start: str, states: States) -> States:
    """The states ``start`` leads to (those a choice decided at export cut off dropped)."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in states:
            continue
        seen.add(name)
        state = states[name]
        todo.extend(t for t in (state.get("Next"), state.get("Default")) if t)
        todo.extend(c["Next"] for c in state.get("Choices", []))
        todo.extend(c["Next"] for c in state.get("Catch", []))
    return {name: state for name, state in states.items() if name in seen}


def _throttle_retry(service: str) -> list[Rule]:
    """Retries of a call not safe to repeat: only errors that say AWS did nothing
    (throttling names its own error on the JSON services; EC2's is in the cause and cannot
    be matched here, so EC2 throttling goes the catch's way and starts over)."""
    names = sorted(f"{service.capitalize()}.{code}" for code in THROTTLING_CODES)
    return [{"ErrorEquals": names, "IntervalSeconds": 2, "BackoffRate": 2.0,
             "MaxAttempts": 5, "MaxDelaySeconds": 60, "JitterStrategy": "FULL"}]


def _response_path(path: str) -> str:
    return "$." + path if not path.startswith("$") else path


def compile_program(step: AslStep, program: Program) -> Fragment:
    return ProgramCompiler(step, program).compile()


def fragment(action: Action, step: AslStep) -> Fragment:
    """The states of ``action`` for ``step``: its program compiled (an action not written
    as a program says why it does not export: :meth:`Action.asl`)."""
    if isinstance(action, ProgramAction):
        return compile_program(step, action.program(step.params))
    return action.asl(step)


def cleanup_fragment(action: Action, step: AslStep,
                     params: Mapping[str, Any]) -> Fragment | None:
    """What each iteration runs at its end for a step of ``action`` with ``params`` (see
    :meth:`ProgramAction.cleanup`), compiled; None when it needs nothing."""
    cleanup = action.cleanup(params) if isinstance(action, ProgramAction) else None
    return None if cleanup is None else compile_program(step, cleanup)


