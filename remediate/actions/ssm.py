"""SSM Run Command: scripts with quoted variables, sent in batches, waited per invocation.

Values never reach a script as raw text: a playbook passes them as ``parameters``
and they become variable assignments quoted for the document's shell
(``$Name = '...'`` or ``NAME='...'``) prepended to the commands. Templates are
therefore refused inside the command text itself (after rendering, a value
spliced there could not be told apart from code).

A command this step already sent and that is still running is found again by its
comment (``ListCommandInvocations``), so a resumed step waits for it instead of
running the script a second time next to itself. After a SendCommand whose reply was
lost (or a crash while it was sent), the step's newest command is taken as that one
even if it already ended: its result is the step's, and the script never runs twice.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Final

from remediate.actions.contract import Action, Plan, StepContext, calls
from remediate.actions.ec2_inspect import batch_limits
from remediate.actions.lost_replies import look_again
from remediate.actions.registry import register
from remediate.actions.requests import ActionRun, AwsError, Call, Request, Sleep, StepFailed, Wait
from remediate.actions.scoped import Condition, Scoped, arn, ec2_arn
from remediate.actions.script_files import read_script, script_problems, template_error
from remediate.language.problems import Problem
from remediate.language.quoting import QUOTERS, UnsafeValue
from remediate.language.schema import (
    Bool,
    Choice,
    Duration,
    Either,
    Field,
    Int,
    ListOf,
    MapOf,
    Record,
    Str,
)

# Document -> the shell its commands run in (the quoting to use).
DOCUMENTS: Final = MappingProxyType(
    {"AWS-RunPowerShellScript": "powershell", "AWS-RunShellScript": "sh"}
)
SHELL_DOCUMENTS: Final = MappingProxyType({shell: doc for doc, shell in DOCUMENTS.items()})
# Invocation statuses that are not final; anything else (Success, Failed, TimedOut,
# Cancelled, and detail values some endpoints report as status) is the end.
IN_FLIGHT: Final[frozenset[str]] = frozenset({"Pending", "InProgress", "Delayed", "Cancelling"})
VARIABLE_RE: Final = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
INSTANCE_ID_RE: Final = r"i-[0-9a-f]{8,17}"
# How long SSM may take to deliver a command to the agent (SendCommand TimeoutSeconds).
DELIVERY_TIMEOUT: Final = 600
# GetCommandInvocation may not know a command for a moment after SendCommand.
_NOT_YET_CODES: Final[frozenset[str]] = frozenset({"InvocationDoesNotExist"})
_NOT_YET_TRIES: Final = 5
# Pages of ListCommandInvocations read when looking for this step's command.
_LIST_PAGES: Final = 10
# The command id in the (cut) JSON text of a long journaled SendCommand answer.
_COMMAND_ID_RE: Final = re.compile(r'"CommandId": "([^"]+)"')


def sends_command(*to_instances: Condition, on_targets: bool = False,
                  label: str = "") -> tuple[Scoped, Scoped]:
    """ssm:SendCommand of the documents above only, to EC2 instances meeting all of
    ``to_instances`` (and ``on_targets``: the playbook's targets). AWS checks the document
    and the instance separately, so each gets its own grant (a tag condition on a document
    would fail)."""
    return (Scoped("ssm:SendCommand", tuple(arn("ssm", f"document/{name}")
                                            for name in DOCUMENTS)),
            Scoped("ssm:SendCommand", (ec2_arn("instance"),), to_instances,
                   on_targets=on_targets, label=label))


def build_script(shell: str, variables: Mapping[str, str], body: Sequence[str]) -> list[str]:
    """Quoted assignments for ``variables``, then ``body``: the lines SSM runs.

    Raises :class:`UnsafeValue` for a value no quoting makes safe (newlines, NUL).
    """
    quote = QUOTERS[shell]
    lines = []
    for name, value in variables.items():
        if not re.fullmatch(VARIABLE_RE, name):
            raise UnsafeValue(f"{name!r} is not a variable name")
        quoted = quote(str(value))
        lines.append(f"${name} = {quoted}" if shell == "powershell" else f"{name}={quoted}")
    return [*lines, *body]


def command_comment(run_id: str, step_id: str, extra: str = "") -> str:
    """The SendCommand comment that lets this step find its own command again (<= 100 chars)."""
    digest = hashlib.sha256(f"{run_id}\0{step_id}\0{extra}".encode()).hexdigest()[:16]
    return f"remediate {digest} {step_id} {extra}".strip()[:100]


@dataclass(frozen=True)
class Invocation:
    """How one command ended on one instance."""

    command_id: str
    instance_id: str
    status: str
    details: str
    exit_code: int
    stdout: str
    stderr: str

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Invocation:
        return cls(
            command_id=str(record.get("CommandId", "")),
            instance_id=str(record.get("InstanceId", "")),
            status=str(record.get("Status", "")),
            details=str(record.get("StatusDetails", "")),
            exit_code=int(record.get("ResponseCode", -1)),
            stdout=str(record.get("StandardOutputContent", "")),
            stderr=str(record.get("StandardErrorContent", "")),
        )

    @property
    def ok(self) -> bool:
        return self.status == "Success" and self.exit_code == 0

    def outputs(self) -> dict[str, Any]:
        return {"command_id": self.command_id, "status": self.status,
                "exit_code": self.exit_code, "stdout": self.stdout, "stderr": self.stderr}

    def failure(self, what: str) -> str:
        """A one-paragraph reason for a human: status, exit code, the script's stderr."""
        status = self.status if self.details in ("", self.status) else (
            f"{self.status} ({self.details})")
        said = self.stderr.strip() or self.stdout.strip()[-2000:] or "no output"
        return (f"{what} failed: SSM command {self.command_id} on {self.instance_id} ended "
                f"{status} with exit code {self.exit_code}: {said}")


def run_script(
    instance_id: str,
    document: str,
    lines: Sequence[str],
    *,
    timeout: float,
    comment: str,
    now: datetime,
    may_be_in_flight: bool = True,
    adopt: bool = False,
    known: frozenset[str] = frozenset(),
) -> Generator[Request, Any, Invocation]:
    """Run ``lines`` on ``instance_id`` (or find this step's command still running), wait.

    ``now`` is the wall-clock time: a command of this step still running cannot be
    older than its delivery and execution timeouts, which bounds the search.
    ``may_be_in_flight`` false (the journal holds no SendCommand of this step): no
    search, the command is sent at once (a busy rescue instance lists many pages).
    ``adopt``: a SendCommand of this step lost its reply and nothing judged its command
    since (:attr:`StepContext.continuing`): this step's newest command other than the
    ``known`` ones (whose replies came: earlier attempts judged them) is that one,
    whatever its status (ended already: its result is this step's; never run twice). A
    new command goes only if none is listed after looking again for a while.
    """
    since = now - timedelta(seconds=timeout + DELIVERY_TIMEOUT)
    command_id = None
    if adopt:
        command_id = yield from _find(instance_id, comment, since, None, known)
        if command_id is None:
            command_id = yield from look_again(
                lambda: _find(instance_id, comment, since, None, known))
    elif may_be_in_flight:
        command_id = yield from _find(instance_id, comment, since, IN_FLIGHT)
    if command_id is None:
        response = yield Call(
            "ssm",
            "SendCommand",
            {
                "InstanceIds": [instance_id],
                "DocumentName": document,
                "Comment": comment,
                "TimeoutSeconds": DELIVERY_TIMEOUT,
                "Parameters": {"commands": list(lines),
                               "executionTimeout": [str(int(timeout))]},
            },
            batch_key="InstanceIds",
            note=f"{document} on {instance_id}",
        )
        command_id = str(response["Command"]["CommandId"])
    return (yield from _await(command_id, instance_id, timeout))


def _find(
    instance_id: str, comment: str, since: datetime, statuses: frozenset[str] | None,
    known: frozenset[str] = frozenset(),
) -> Generator[Request, Any, str | None]:
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


def _await(
    command_id: str, instance_id: str, timeout: float
) -> Generator[Request, Any, Invocation]:
    for attempt in range(_NOT_YET_TRIES):
        try:
            record = yield Wait(
                "command-invocation",
                f"{command_id}:{instance_id}",
                until=lambda r: r is not None and r.get("Status") not in IN_FLIGHT,
                timeout=timeout + DELIVERY_TIMEOUT,
                what=f"SSM command {command_id} on {instance_id}",
            )
            return Invocation.from_record(record)
        except AwsError as exc:
            if exc.code not in _NOT_YET_CODES or attempt == _NOT_YET_TRIES - 1:
                raise
            yield Sleep(2.0 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


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


def parameter_values(parameters: Mapping[str, Any]) -> dict[str, str]:
    return {name: str(value) for name, value in parameters.items()}


@register
class RunCommand(Action):
    name = "ssm.run_command"
    summary = "Run commands or a script file on an instance through SSM Run Command."
    kinds = frozenset({"ec2-instance"})
    params = Record(fields={
        "document": Field(Choice(values=tuple(DOCUMENTS)), default="AWS-RunPowerShellScript",
                          description="the SSM document: PowerShell (Windows) or shell (Linux)"),
        "commands": Field(ListOf(item=Str(min_len=0), min_items=1, max_items=1000),
                          description="script lines to run; no ${{ }} templates: use "
                                      "parameters"),
        "script": Field(Str(max_len=1024),
                        description="a script file, relative to the playbook's folder "
                                    "(instead of commands)"),
        "parameters": Field(
            MapOf(key=Str(pattern=VARIABLE_RE, pattern_name="a variable name (letters, "
                          "digits, _)"),
                  value=Either(options=(Str(min_len=0, templated=True), Int()))),
            default={},
            description="variables set before the script runs, each value quoted for the "
                        "shell; templates allowed here"),
        "instance_id": Field(Str(pattern=INSTANCE_ID_RE, pattern_name="an instance id (i-...)",
                                 templated=True),
                             description="where to run it; default: the target instance"),
        "timeout": Field(Duration(minimum=30, maximum=48 * 3600), default=600.0,
                         description="how long the script may run"),
        "fail_on_error": Field(Bool(), default=True,
                               description="fail the step unless the command ends Success with "
                                           "exit code 0 (false: report it in outputs)"),
    })
    outputs = {
        "command_id": "the SSM command id",
        "status": "Success, Failed, Cancelled or TimedOut",
        "exit_code": "the script's exit code (-1 if it never ran)",
        "stdout": "standard output (SSM keeps the first 24,000 characters)",
        "stderr": "standard error (SSM keeps the first 8,000 characters)",
    }
    permissions = ("ssm:SendCommand", "ssm:GetCommandInvocation", "ssm:ListCommandInvocations")
    # The target itself; with instance_id, any instance the playbook names (only these
    # documents either way).
    scoped_permissions = sends_command(on_targets=True)

    def grants(self, params: Mapping[str, Any] | None = None) -> tuple[Scoped, ...]:
        """To the target, or (a step naming its instance_id) to any instance."""
        if params is None or params.get("instance_id") is None:
            return super().grants(params)
        return tuple(grant.bound(()) for grant in super().grants(params))
    mutating = True
    batches = batch_limits("ssm:SendCommand")
    verify = "the invocation ends Success with exit code 0"

    def validate(self, params: Mapping[str, Any], base_dir: str) -> list[Problem]:
        problems: list[Problem] = []
        has_commands, has_script = "commands" in params, "script" in params
        if has_commands and has_script:
            problems.append(Problem((), "set commands or script, not both"))
        elif not has_commands and not has_script:
            problems.append(Problem((), "set commands (a list of lines) or script (a file)"))
        for i, line in enumerate(params.get("commands") or []):
            problem = template_error(str(line), "commands") if isinstance(line, str) else None
            if problem:
                problems.append(Problem(("commands", i), problem))
        if isinstance(params.get("script"), str):
            problems += script_problems(base_dir, params["script"], ("script",))
        shell = DOCUMENTS.get(str(params.get("document", "AWS-RunPowerShellScript")), "sh")
        for name, value in (params.get("parameters") or {}).items():
            if not isinstance(value, str):
                continue
            try:  # the text around templates now; what they stand for once it is known
                QUOTERS[shell](value)
            except UnsafeValue as exc:
                problems.append(Problem(("parameters", name), str(exc),
                                        "no quoting makes a newline or NUL safe in a "
                                        "script: pass one line of text"))
        return problems

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        instance_id = params.get("instance_id") or ctx.target.id
        what = f"script {params['script']}" if "script" in params else (
            f"{len(params.get('commands') or [])} command line(s)")
        return Plan(calls("ssm:SendCommand", note="up to 50 instances a call"),
                    note=f"run {what} with {params['document']} on {instance_id}")

    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        document = params["document"]
        shell = DOCUMENTS[document]
        instance_id = str(params.get("instance_id") or ctx.target.id)
        if "script" in params:
            body = read_script(ctx.base_dir, params["script"])
        else:
            body = list(params["commands"])
            for line in body:
                problem = template_error(line, "commands")
                if problem:
                    raise StepFailed(problem)
        try:
            lines = build_script(shell, parameter_values(params.get("parameters") or {}), body)
        except UnsafeValue as exc:
            raise StepFailed(f"parameters: {exc}") from exc
        invocation = yield from run_script(
            instance_id, document, lines, timeout=params["timeout"],
            comment=command_comment(ctx.run_id, ctx.step_id), now=ctx.clock.wall(),
            may_be_in_flight=ctx.may_have_sent("SendCommand"), adopt=adopts_command(ctx),
            known=known_commands(ctx))
        if params["fail_on_error"] and not invocation.ok:
            raise StepFailed(invocation.failure(f"{self.name} on {instance_id}"))
        return invocation.outputs()
