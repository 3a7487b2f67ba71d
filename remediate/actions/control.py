"""Steps that call no AWS API: wait a while, or fail a target on purpose.

``control.pause`` lets a playbook give something outside remediate time to act
(a sensor fetching a fixed channel file between reboots). ``control.fail`` is a
guarded last resort: with a ``when`` condition it stops a target whose earlier
steps could not fix it, with a message the operator reads in the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from remediate.actions import program as steps
from remediate.actions.contract import Plan, StepContext
from remediate.actions.program import Program, Var, program
from remediate.actions.programmed import ProgramAction
from remediate.actions.registry import register
from remediate.kinds import KIND_NAMES
from remediate.language.durations import format_duration
from remediate.language.schema import Duration, Field, Record, Str

ANY_KIND: Final = frozenset(KIND_NAMES)


@register
class Pause(ProgramAction):
    name = "control.pause"
    summary = "Wait for a duration (on the run's clock) before the next step."
    kinds = ANY_KIND
    params = Record(fields={
        "duration": Field(Duration(minimum=0, maximum=24 * 3600), required=True,
                          description="how long to wait, e.g. 90s or 5m"),
        "reason": Field(Str(max_len=200), default="",
                        description="why, for the progress display and the journal"),
    })
    outputs = {"waited": "seconds waited"}
    verify = "nothing to verify"

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        why = f" ({params['reason']})" if params["reason"] else ""
        return Plan(note=f"wait {format_duration(params['duration'])}{why}")

    def program(self, params: Mapping[str, Any]) -> Program:
        duration = Var("params.duration")
        # A pause of 0 waits for nothing (a Wait state waits at least a second).
        pause = (steps.Pause(duration),) if params["duration"] > 0 else ()
        return program(*pause, steps.Done({"waited": duration}))


@register
class Fail(ProgramAction):
    name = "control.fail"
    summary = "Fail the target with a message (use with `when` as a guarded last resort)."
    kinds = ANY_KIND
    params = Record(fields={
        "message": Field(Str(max_len=1000, templated=True), required=True,
                         description="what the operator reads; templates allowed, e.g. "
                                     "${{ steps.reboot.outputs.state }}"),
    })
    verify = "the target is reported failed with the message"

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        return Plan(note=f"fail the target: {params['message']}")

    def program(self, params: Mapping[str, Any]) -> Program:
        return program(steps.Fail(Var("params.message")))
