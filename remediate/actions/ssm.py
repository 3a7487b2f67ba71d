"""SSM Run Command: ``ssm.run_command``, and the IAM grants of any SendCommand.

Values never reach a script as raw text: a playbook passes them as ``parameters``
and they become variable assignments quoted for the document's shell
(``$Name = '...'`` or ``NAME='...'``) prepended to the commands. Templates are
therefore refused inside the command text itself (after rendering, a value
spliced there could not be told apart from code).

The action is a program (:mod:`remediate.actions.ssm_flows` has its pieces: finding
this step's command again after a crash or a lost reply, sending, waiting, judging).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from remediate.actions.contract import Plan, StepContext, calls
from remediate.actions.ec2_inspect import batch_limits
from remediate.actions.program import TARGET_ID, Done, Fail, Fmt, Program, Script, Set, Var, program
from remediate.actions.programmed import ProgramAction
from remediate.actions.registry import register
from remediate.actions.scoped import Condition, Scoped, arn, ec2_arn
from remediate.actions.script_files import script_problems, template_error
from remediate.actions.script_lines import VARIABLE_RE, build_script
from remediate.actions.ssm_flows import (
    DELIVERY_TIMEOUT,
    DOCUMENTS,
    IN_FLIGHT,
    INSTANCE_ID_RE,
    SHELL_DOCUMENTS,
    command_comment,
    judged,
    run_script,
)
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

__all__ = [
    "DELIVERY_TIMEOUT",
    "DOCUMENTS",
    "INSTANCE_ID_RE",
    "IN_FLIGHT",
    "SHELL_DOCUMENTS",
    "RunCommand",
    "build_script",
    "command_comment",
    "sends_command",
]


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


@register
class RunCommand(ProgramAction):
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

    def program(self, params: Mapping[str, Any]) -> Program:
        document = params["document"]
        instance = Var("params.instance_id") if params.get("instance_id") else TARGET_ID
        if "script" in params:
            script = Script(DOCUMENTS[document], _variables(params), file=params["script"])
        else:
            for line in params["commands"]:
                problem = template_error(line, "commands")
                if problem:
                    return program(Fail(problem))
            script = Script(DOCUMENTS[document], _variables(params),
                            lines=tuple(params["commands"]))
        record = Var("vars.invocation")
        return program(
            Set("commands", script),
            *run_script("invocation", instance, document, Var("vars.commands"),
                        params["timeout"]),
            *(judged("invocation", Fmt(f"{self.name} on ", instance))
              if params["fail_on_error"] else ()),
            Done({"command_id": record.CommandId, "status": record.Status,
                  "exit_code": record.ResponseCode, "stdout": record.StandardOutputContent,
                  "stderr": record.StandardErrorContent}))


def _variables(params: Mapping[str, Any]) -> dict[str, Var]:
    return {name: Var(f"params.parameters.{name}") for name in params.get("parameters") or {}}
