"""SSM Run Command as program pieces (:mod:`remediate.actions.program`): find this step's
command, send it, wait for its invocation to end, judge how it ended.

The script travels as :class:`~remediate.actions.program.Script`: values become quoted
assignments before the commands, never raw text inside them.

A command this step already sent and that is still running is found again by its
comment (``ListCommandInvocations``), so a resumed step waits for it instead of
running the script a second time next to itself. After a SendCommand whose reply was
lost (or a crash while it was sent), the step's newest command is taken as that one
even if it already ended: its result is the step's, and the script never runs twice.
What this step sent is the journal's knowledge, so finding it is a
:class:`~remediate.actions.program.Native` step; see :func:`run_script` for what a
Step Functions iteration does instead.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Generator, Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Final

from remediate.actions.contract import StepContext
from remediate.actions.interpret import Scope, evaluate
from remediate.actions.lost_replies import look_again
from remediate.actions.program import (
    All,
    AnyOf,
    Await,
    Eq,
    Exists,
    Expr,
    Fail,
    Fmt,
    If,
    In,
    Native,
    Not,
    Same,
    Send,
    Sent,
    Seq,
    Set,
    Var,
)
from remediate.actions.requests import Call, Request

# Document -> the shell its commands run in (the quoting to use).
DOCUMENTS: Final = MappingProxyType(
    {"AWS-RunPowerShellScript": "powershell", "AWS-RunShellScript": "sh"}
)
SHELL_DOCUMENTS: Final = MappingProxyType({shell: doc for doc, shell in DOCUMENTS.items()})
# Invocation statuses that are not final; anything else (Success, Failed, TimedOut,
# Cancelled, and detail values some endpoints report as status) is the end.
IN_FLIGHT: Final[frozenset[str]] = frozenset({"Pending", "InProgress", "Delayed", "Cancelling"})
INSTANCE_ID_RE: Final = r"i-[0-9a-f]{8,17}"
# How long SSM may take to deliver a command to the agent (SendCommand TimeoutSeconds).
DELIVERY_TIMEOUT: Final = 600
# Pages of ListCommandInvocations read when looking for this step's command.
_LIST_PAGES: Final = 10
# The command id in the (cut) JSON text of a long journaled SendCommand answer.
_COMMAND_ID_RE: Final = re.compile(r'"CommandId": "([^"]+)"')
# SSM keeps this much of stdout; a reason quotes at most its tail.
_SAID: Final = 2000

Steps = Generator[Request, Any, Any]


def command_comment(run_id: str, step_id: str, extra: str = "") -> str:
    """The SendCommand comment that lets this step find its own command again (<= 100 chars)."""
    digest = hashlib.sha256(f"{run_id}\0{step_id}\0{extra}".encode()).hexdigest()[:16]
    return f"remediate {digest} {step_id} {extra}".strip()[:100]


def adopts_command(ctx: StepContext) -> bool:
    """Whether this step's newest command, whatever its status, is the one a lost
    SendCommand of this step started and nothing judged yet (see :func:`run_script`)."""
    return ctx.continuing and ctx.reply_lost("SendCommand")


def known_commands(ctx: StepContext) -> frozenset[str]:
    """The commands this step's answered SendCommands started (earlier attempts)."""
    known: set[str] = set()
    for answer in ctx.answers("SendCommand"):
        if not isinstance(answer, Mapping):
            continue
        command = answer.get("Command")
        if isinstance(command, Mapping) and command.get("CommandId"):
            known.add(str(command["CommandId"]))
        elif isinstance(answer.get("truncated"), str):  # a long answer, journaled cut
            known.update(_COMMAND_ID_RE.findall(answer["truncated"]))
    return frozenset(known)


def _find(instance_id: str, comment: str, since: datetime, statuses: frozenset[str] | None,
          known: frozenset[str] = frozenset()) -> Steps:
    """The newest command with ``comment`` on the instance, not one of ``known``, whose
    invocation status is one of ``statuses`` (None: any status); None if there is none."""
    request: dict[str, Any] = {
        "InstanceId": instance_id,
        "MaxResults": 50,
        "Filters": [{"key": "InvokedAfter", "value": since.strftime("%Y-%m-%dT%H:%M:%SZ")}],
    }
    found: list[Mapping[str, Any]] = []
    for _ in range(_LIST_PAGES):
        response = yield Call("ssm", "ListCommandInvocations", request,
                              note=f"look for this step's command on {instance_id}")
        found.extend(invocation for invocation in response.get("CommandInvocations", [])
                     if invocation.get("Comment") == comment
                     and invocation.get("CommandId") not in known
                     and (statuses is None or invocation.get("Status") in statuses))
        if not response.get("NextToken"):
            break
        request = {**request, "NextToken": response["NextToken"]}
    if not found:
        return None
    newest = max(found, key=lambda invocation: str(invocation.get("RequestedDateTime", "")))
    return str(newest["CommandId"])


def _this_steps_command(instance: Expr, extra: Expr, timeout: float) -> Any:
    """The local engine's search (see the module's docstring): ``{"command_id": the
    command to wait for instead of sending one (None: send), "comment": the comment a
    new one carries}``.

    ``may_have_sent`` false (the journal holds no SendCommand of this step): no search,
    the command goes at once (a busy rescue instance lists many pages). A SendCommand of
    this step that lost its reply, and nothing judged its command since: the step's
    newest command other than those whose replies came (earlier attempts judged them)
    is that one, whatever its status; a new command goes only if none is listed after
    looking again for a while. Else only a command still running is waited for. The
    search reaches back as far as a command of this step could still be running.
    """

    def local(ctx: StepContext, params: Mapping[str, Any], scope: Scope) -> Steps:
        instance_id = str(evaluate(instance, scope))
        comment = command_comment(ctx.run_id, ctx.step_id, str(evaluate(extra, scope)))
        since = ctx.clock.wall() - timedelta(seconds=timeout + DELIVERY_TIMEOUT)
        command_id = None
        if adopts_command(ctx):
            known = known_commands(ctx)
            command_id = yield from _find(instance_id, comment, since, None, known)
            if command_id is None:
                command_id = yield from look_again(
                    lambda: _find(instance_id, comment, since, None, known))
        elif ctx.may_have_sent("SendCommand"):
            command_id = yield from _find(instance_id, comment, since, IN_FLIGHT)
        return {"command_id": command_id, "comment": comment}

    return local


def run_script(into: str, instance: Expr, document: str, commands: Expr, timeout: float,
               extra: Expr = "") -> Seq:
    """Run ``commands`` (the lines, see :class:`~remediate.actions.program.Script`) with
    ``document`` on ``instance``, or find this step's command (its comment names the
    step and ``extra``), and wait until it ends: its invocation (GetCommandInvocation's
    answer) is then at ``vars.<into>``. ``timeout``: how long the script may run.

    On Step Functions an iteration does not crash and forget, and knows the answers it
    got; what it cannot do is search SSM's listing for its comment (a definition
    compares list items only with text known at export). So a SendCommand whose reply
    was lost (a 5xx, a timeout: the program starts again, :class:`Sent` then holds)
    is not sent again there: the step fails, saying the command may be running,
    rather than run the script twice. A step's ``retries`` do send it again.
    """
    found, command_id = Var(f"vars.{into}_found"), Var(f"vars.{into}_id")
    sent = Var(f"vars.{into}_sent")
    comment = Fmt("remediate ", Var("run.step"), *((" ", extra) if extra != "" else ()))
    lost = Fail(Fmt("SendCommand to ", instance, " lost its reply: its command may be "
                    "running, and a Step Functions iteration cannot look for it by its "
                    "comment, so it is not sent again (ListCommandInvocations for ",
                    instance, " shows it)"))
    return (
        Native("this step's SSM command", into=f"{into}_found",
               local=_this_steps_command(instance, extra, timeout), asl=None,
               why="what this step sent before a crash or a lost reply is in the journal",
               counterpart=(If(((Sent("SendCommand"), (lost,)),)),
                            Set(f"{into}_found", {"command_id": None, "comment": comment}))),
        If(((Exists(found.command_id), (Set(f"{into}_id", found.command_id),)),),
           orelse=(Send("ssm", "SendCommand", {
               "InstanceIds": [instance], "DocumentName": document, "Comment": found.comment,
               "TimeoutSeconds": DELIVERY_TIMEOUT,
               "Parameters": {"commands": commands,
                              "executionTimeout": [str(int(timeout))]},
           }, batch_key="InstanceIds", into=f"{into}_sent", pick={"id": "Command.CommandId"},
               note=Fmt(document, " on ", instance)),
               Set(f"{into}_id", sent.id))),
        Await(into, "command-invocation", Fmt(command_id, ":", instance),
              until=All(Exists(Var("it")), Not(In(Var("it").Status, *sorted(IN_FLIGHT)))),
              timeout=timeout + DELIVERY_TIMEOUT,
              what=Fmt("SSM command ", command_id, " on ", instance)),
    )


def _said(record: Var) -> Any:
    """What the script said, for a reason: its stderr, else the tail of its stdout, each
    without the whitespace around it, else "no output"."""

    def local(ctx: StepContext, params: Mapping[str, Any], scope: Scope) -> Steps:
        found = evaluate(record, scope) or {}
        stderr = str(found.get("StandardErrorContent", "")).strip()
        stdout = str(found.get("StandardOutputContent", "")).strip()
        return {"text": stderr or stdout[-_SAID:] or "no output"}
        yield  # pragma: no cover

    return local


def _given(text: Var) -> Any:
    return All(Exists(text), Not(Eq(text, "")))


def judged(into: str, what: Expr) -> Seq:
    """Fail the step unless the invocation at ``vars.<into>`` ended Success with exit
    code 0: "<what> failed: SSM command <id> on <instance> ended <status> with exit code
    <n>: <what the script said>"."""
    record = Var(f"vars.{into}")
    status, said = Var(f"vars.{into}_status"), Var(f"vars.{into}_said")
    stderr, stdout = record.StandardErrorContent, record.StandardOutputContent
    plain = AnyOf(Not(_given(record.StatusDetails)), Same(record.StatusDetails, record.Status))
    return (If(((Not(All(Eq(record.Status, "Success"), Eq(record.ResponseCode, 0))), (
        If(((plain, (Set(f"{into}_status", record.Status),)),),
           orelse=(Set(f"{into}_status", Fmt(record.Status, " (", record.StatusDetails, ")")),)),
        # Trimming text is beyond a definition: Step Functions quotes it as it is.
        Native("what the script said", into=f"{into}_said", local=_said(record), asl=None,
               why="a definition cannot trim text", counterpart=(
                   If(((_given(stderr), (Set(f"{into}_said", {"text": stderr}),)),
                       (_given(stdout), (Set(f"{into}_said", {"text": stdout}),))),
                      orelse=(Set(f"{into}_said", {"text": "no output"}),)),)),
        Fail(Fmt(what, " failed: SSM command ", record.CommandId, " on ", record.InstanceId,
                 " ended ", status, " with exit code ", record.ResponseCode, ": ", said.text)),
    )),)),)
