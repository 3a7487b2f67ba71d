"""``ssm.verify_guest``: proof of recovery from inside the guest (issue 17).

Status checks say the instance boots; they do not say the bad channel file is gone or
that the sensor runs again. Where the SSM agent comes Online after the boot, this step
runs a check script on the target itself (playbooks/scripts/crowdstrike-verify.ps1, or
the .sh for Linux hosts) through SSM Run Command: the script exits non-zero, saying
why, if a ``C-00000291*.sys`` of the faulty 04:09 UTC build is still there or the
sensor's service is not running, and the step fails with what it said. An instance
whose agent does not come Online in ``online_within`` is not failed for it (not every
fleet is SSM-managed): the step ends with ``checked: false`` and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from remediate.actions.contract import Plan, StepContext, calls
from remediate.actions.ec2_inspect import batch_limits
from remediate.actions.instance_flows import IT
from remediate.actions.program import (
    TARGET_ID,
    Await,
    Done,
    Eq,
    Fmt,
    Program,
    Script,
    Set,
    Var,
    program,
)
from remediate.actions.programmed import ProgramAction
from remediate.actions.registry import register
from remediate.actions.script_files import (
    SHELL_FIELD,
    script_field,
    script_shell_problems,
    shell_of,
)
from remediate.actions.ssm import sends_command
from remediate.actions.ssm_flows import SHELL_DOCUMENTS, judged, run_script
from remediate.language.problems import Problem
from remediate.language.schema import Duration, Field, Record

DEFAULT_SCRIPT: Final = "scripts/crowdstrike-verify.ps1"


@register
class VerifyGuest(ProgramAction):
    name = "ssm.verify_guest"
    summary = ("Where the target's SSM agent comes Online, run the in-guest check (the bad "
               "channel file is gone, the sensor runs) and fail with what it found.")
    kinds = frozenset({"ec2-instance"})
    params = Record(fields={
        "script": script_field(DEFAULT_SCRIPT, "the check script, relative to the playbook's "
                                               "folder; exit 0 when the guest is recovered"),
        "shell": SHELL_FIELD,
        "online_within": Field(Duration(minimum=0, maximum=3600), default=300.0,
                               description="how long the agent may take to come Online "
                                           "after the boot; then the check is skipped"),
        "timeout": Field(Duration(minimum=30, maximum=3600), default=300.0,
                         description="how long the script may run"),
    })
    outputs = {
        "checked": "whether the check ran (false: the SSM agent was not Online in time)",
        "stdout": "what the script reported",
        "note": "why the check did not run, when it did not",
    }
    permissions = ("ssm:DescribeInstanceInformation", "ssm:SendCommand",
                   "ssm:GetCommandInvocation", "ssm:ListCommandInvocations")
    scoped_permissions = sends_command(on_targets=True)
    # It sends a command (journaled like any), but changes nothing on the instance.
    mutating = True
    batches = batch_limits("ssm:SendCommand")
    verify = "the check script ends Success with exit code 0, or the agent is not Online"

    def validate(self, params: Mapping[str, Any], base_dir: str) -> list[Problem]:
        return script_shell_problems(base_dir, params, DEFAULT_SCRIPT)

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        return Plan(calls("ssm:DescribeInstanceInformation", "ssm:SendCommand"),
                    note=f"run {params['script']} on {ctx.target.id} if its SSM agent is "
                         "Online")

    def program(self, params: Mapping[str, Any]) -> Program:
        script = params["script"]
        shell = shell_of(script, params["shell"]) or "powershell"
        record = Var("vars.invocation")
        skipped = Fmt("SSM agent of ", TARGET_ID, " not Online within ",
                      str(int(params["online_within"])), "s of the boot: in-guest check "
                      "skipped")
        return program(
            Await("online", "ssm-agent", TARGET_ID, until=Eq(IT.PingStatus, "Online"),
                  timeout=params["online_within"],
                  what=Fmt("SSM agent of ", TARGET_ID, " Online"),
                  on_timeout=(Done({"checked": False, "stdout": "", "note": skipped}),)),
            Set("commands", Script(shell, {"InstanceId": TARGET_ID}, file=script,
                                   plain=frozenset({"InstanceId"}))),
            *run_script("invocation", TARGET_ID, SHELL_DOCUMENTS[shell], Var("vars.commands"),
                        params["timeout"]),
            *judged("invocation", Fmt("in-guest check of ", TARGET_ID)),
            Done({"checked": True, "stdout": record.StandardOutputContent, "note": ""}))
