"""Amazon WorkSpaces (Personal): inspect, start, reboot, restore, rebuild, wait.

AWS's own runbook (``AWSSupport-RecoverWorkSpace``) goes start if stopped ->
reboot -> restore -> rebuild, each gated by the WorkSpace's state; these actions
are those steps. A start that finds the WorkSpace still UNHEALTHY (an AutoStop
WorkSpace stopped in its boot loop comes back as it went) reports it, for the
reboot to follow, rather than failing. How each request is sent at most once where
a repeat would cost user data, and how a request already under way is waited for,
is :mod:`remediate.actions.workspace_transition`'s.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any, ClassVar, Final

from remediate.actions.contract import Plan, StepContext, calls
from remediate.actions.ec2_inspect import batch_limits
from remediate.actions.program import (
    TARGET_ID,
    Await,
    Done,
    Eq,
    Fail,
    Fmt,
    If,
    In,
    Native,
    Program,
    Set,
    Var,
    program,
)
from remediate.actions.programmed import ProgramAction
from remediate.actions.registry import register
from remediate.actions.requests import Call
from remediate.actions.target_permissions import on_workspaces
from remediate.actions.workspace_transition import (
    AVAILABLE,
    FOUND,
    STATE,
    WS,
    Transition,
    healthy_or_not,
    read,
    settle,
)
from remediate.kinds import KINDS
from remediate.language.schema import Bool, Choice, Duration, Field, ListOf, Record

KIND: Final = frozenset({"workspace"})
STATES: Final = (
    "PENDING", "AVAILABLE", "IMPAIRED", "UNHEALTHY", "REBOOTING", "STARTING", "REBUILDING",
    "RESTORING", "MAINTENANCE", "ADMIN_MAINTENANCE", "TERMINATING", "TERMINATED", "SUSPENDED",
    "UPDATING", "STOPPING", "STOPPED", "ERROR",
)
# A WorkSpace REBOOTING for over this long is stuck: AWS lets it be rebooted again
# ("stuck in the REBOOTING state for over 20 minutes", RebootWorkspaces API reference).
STUCK_REBOOT: Final = 1200.0
# How long past STUCK_REBOOT to wait before rebooting again: "over", not "at".
_STUCK_MARGIN: Final = 60.0
_DESCRIBE = "workspaces:DescribeWorkspaces"
# The facts a Step Functions iteration learns (the inspect program's outputs but tags,
# see _TAGS): what an exported template or ``when`` may read.
EXPORTED_FACTS: Final = ("id", "region", "account", "state", "directory_id", "bundle_id",
                         "user_name", "computer_name", "running_mode")


def _tags_here(ctx: StepContext, params: Mapping[str, Any],
              scope: Any) -> Generator[Call, Any, dict[str, Any]]:
    """The WorkSpace's tags, as the mapping the ``tags`` fact is."""
    tags = yield Call("workspaces", "DescribeTags", {"ResourceId": ctx.target.id})
    return {"tags": {t["Key"]: t.get("Value", "") for t in tags.get("TagList", [])}}


def _no_tags_on_step_functions(compiler: Any, path: str, nxt: str) -> str:
    """A Pass state: ``tags`` is null (see ``_TAGS``)."""
    return str(compiler.add(compiler.name(path), {
        "Type": "Pass", "Result": {"tags": None}, "ResultPath": "$.r.described", "Next": nxt}))


_TAGS: Final = Native(
    "workspace tags", "described", _tags_here, _no_tags_on_step_functions,
    why="DescribeTags answers a list of Key/Value pairs and the fact is a mapping: ASL's "
        "JSONPath cannot build an object whose keys come from data. On Step Functions the "
        "iteration calls nothing and its facts hold tags: null (a template or `when` "
        "reading target.tags does not export: EXPORTED_FACTS).")


TIMEOUT_DOC = "how long to wait for the WorkSpace to settle"
REQUIRE_HEALTHY = Field(Bool(), default=False,
                        description="fail the step unless the WorkSpace ends AVAILABLE "
                                    "(false: report it in outputs.healthy)")
RECOVERY_OUTPUTS: Final = {
    "healthy": "whether the WorkSpace ended AVAILABLE",
    "state": "its state at the end",
}


@register
class Inspect(ProgramAction):
    name = "workspaces.inspect"
    summary = "Read a WorkSpace's facts (state, directory, bundle, user, running mode, tags)."
    kinds = KIND
    outputs = dict(KINDS["workspace"].facts)
    permissions = (_DESCRIBE, "workspaces:DescribeTags")
    verify = "the WorkSpace exists"

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        return Plan(calls(_DESCRIBE, "workspaces:DescribeTags", mutating=False))

    def program(self, params: Mapping[str, Any]) -> Program:
        # Copied first: a field AWS leaves out reads as null (on Step Functions an
        # absent path is an error).
        fields = {"directory_id": WS.DirectoryId, "bundle_id": WS.BundleId,
                  "user_name": WS.UserName, "computer_name": WS.ComputerName,
                  "running_mode": WS.WorkspaceProperties.RunningMode}
        return program(
            *read(), _TAGS, *(Set(name, value) for name, value in fields.items()),
            Done({"id": TARGET_ID, "region": Var("target.region"),
                  "account": Var("target.account"), "state": WS.State,
                  "tags": Var("vars.described").tags,
                  **{name: Var(f"vars.{name}") for name in fields}}))


def _recovery_params(timeout: float) -> Record:
    return Record(fields={
        "timeout": Field(Duration(minimum=60, maximum=4 * 3600), default=timeout,
                         description=TIMEOUT_DOC),
        "require_healthy": REQUIRE_HEALTHY,
    })


START: Final = Transition("StartWorkspaces", "STARTING", frozenset({"STOPPED"}), "start",
                          batch_field="StartWorkspaceRequests")


@register
class Start(ProgramAction):
    name = "workspaces.start"
    summary = ("Start a STOPPED WorkSpace and wait until it settles (others are skipped); "
               "one still broken comes back UNHEALTHY, for the reboot.")
    kinds = KIND
    params = Record(fields={
        "timeout": Field(Duration(minimum=60, maximum=4 * 3600), default=1200.0,
                         description=TIMEOUT_DOC),
    })
    outputs = {"started": "whether a start was needed",
               "healthy": "whether the WorkSpace ended AVAILABLE",
               "state": "its state at the end"}
    permissions = (_DESCRIBE, "workspaces:StartWorkspaces")
    scoped_permissions = (on_workspaces("workspaces:StartWorkspaces"),)
    mutating = True
    batches = batch_limits("workspaces:StartWorkspaces")
    verify = "the WorkSpace is no longer STOPPED (outputs.healthy: AVAILABLE)"

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        state_now = ctx.facts.get("state")
        if state_now != "STOPPED":
            return Plan(skip=f"the WorkSpace is {state_now}, not STOPPED")
        return Plan(calls("workspaces:StartWorkspaces"), note="start it, wait until it settles")

    def program(self, params: Mapping[str, Any]) -> Program:
        timeout = params["timeout"]
        return program(
            *settle(START, timeout, timeout,
                    unchanged=healthy_or_not({"started": False}, FOUND)),
            If(((In(STATE, "STOPPED", "STARTING"), (Fail(Fmt(
                "WorkSpace ", TARGET_ID, " is still ", STATE, " after StartWorkspaces")),)),)),
            *healthy_or_not({"started": True}))


class _Recovery(ProgramAction):
    """Reboot, restore and rebuild: one request, one transitional state, then settled."""

    kinds = KIND
    mutating = True
    change: ClassVar[Transition]
    verify = "the WorkSpace is AVAILABLE (outputs.healthy)"

    def in_flight_timeout(self, params: Mapping[str, Any]) -> float:
        """How long to wait for a transition already under way before starting one."""
        return float(params["timeout"])

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        state_now = ctx.facts.get("state")
        change = self.change
        note = f"{change.operation}, wait until it leaves {change.transient}"
        if state_now not in self.start_states:
            note += f"; would fail: the WorkSpace is {state_now}"
        return Plan(calls(f"workspaces:{change.operation}"), note=note)

    def program(self, params: Mapping[str, Any]) -> Program:
        operation = self.change.operation
        refused = (Fail(Fmt("WorkSpace ", TARGET_ID, " is ", FOUND,
                            f": {operation} needs {self._allowed_text()}")),)
        return program(
            *settle(self.change, params["timeout"], self.in_flight_timeout(params), refused),
            If(((Eq(STATE, AVAILABLE), (Done({"healthy": True, "state": STATE}),)),)),
            If(((Eq(Var("params.require_healthy"), True), (Fail(Fmt(
                "WorkSpace ", TARGET_ID, " is ", STATE, f" after {operation}, not AVAILABLE")),
            )),)),
            Done({"healthy": False, "state": STATE}))

    def _allowed_text(self) -> str:
        text = ", ".join(sorted(self.change.allowed))
        if self.change.restart_when_stuck:
            text += f" (or {self.change.transient} for over {STUCK_REBOOT / 60:g} minutes)"
        return text


@register
class Reboot(_Recovery):
    name = "workspaces.reboot"
    summary = ("Reboot a WorkSpace (AVAILABLE, UNHEALTHY, or REBOOTING for over 20 minutes) "
               "and wait until it settles.")
    params = _recovery_params(1200.0)
    outputs = RECOVERY_OUTPUTS
    permissions = (_DESCRIBE, "workspaces:RebootWorkspaces")
    scoped_permissions = (on_workspaces("workspaces:RebootWorkspaces"),)
    batches = batch_limits("workspaces:RebootWorkspaces")
    start_states = frozenset({"AVAILABLE", "UNHEALTHY", "REBOOTING"})
    change = Transition("RebootWorkspaces", "REBOOTING", frozenset({"AVAILABLE", "UNHEALTHY"}),
                        "reboot", batch_field="RebootWorkspaceRequests", restart_when_stuck=True)

    def in_flight_timeout(self, params: Mapping[str, Any]) -> float:
        return STUCK_REBOOT + _STUCK_MARGIN


@register
class Restore(_Recovery):
    name = "workspaces.restore"
    summary = ("Restore a WorkSpace to its last healthy snapshot (loses up to 12 hours of user "
               "data) and wait until it settles; never sent twice.")
    params = _recovery_params(3600.0)
    outputs = RECOVERY_OUTPUTS
    permissions = (_DESCRIBE, "workspaces:RestoreWorkspace")
    scoped_permissions = (on_workspaces("workspaces:RestoreWorkspace"),)
    start_states = frozenset({"AVAILABLE", "ERROR", "UNHEALTHY", "STOPPED", "RESTORING"})
    destructive = "workspace-restore-data-loss"
    risks = frozenset({"workspace-restore-data-loss"})
    change = Transition(
        "RestoreWorkspace", "RESTORING", frozenset({"AVAILABLE", "ERROR", "UNHEALTHY", "STOPPED"}),
        "restore", destructive=True)


@register
class Rebuild(_Recovery):
    name = "workspaces.rebuild"
    summary = ("Rebuild a WorkSpace (root volume from the bundle image, user volume from its "
               "last snapshot) and wait until it settles; up to an hour; never sent twice.")
    params = _recovery_params(5400.0)
    outputs = RECOVERY_OUTPUTS
    permissions = (_DESCRIBE, "workspaces:RebuildWorkspaces")
    scoped_permissions = (on_workspaces("workspaces:RebuildWorkspaces"),)
    batches = batch_limits("workspaces:RebuildWorkspaces")
    start_states = frozenset({"AVAILABLE", "ERROR", "UNHEALTHY", "STOPPED", "REBOOTING",
                              "REBUILDING"})
    destructive = "workspace-rebuild-data-loss"
    risks = frozenset({"workspace-rebuild-data-loss"})
    change = Transition(
        "RebuildWorkspaces", "REBUILDING",
        frozenset({"AVAILABLE", "ERROR", "UNHEALTHY", "STOPPED", "REBOOTING"}), "rebuild",
        batch_field="RebuildWorkspaceRequests", destructive=True,
        last_resort=True)


@register
class WaitState(ProgramAction):
    name = "workspaces.wait_state"
    summary = "Wait until a WorkSpace is in one of the given states."
    kinds = KIND
    params = Record(fields={
        "states": Field(ListOf(item=Choice(values=STATES), min_items=1, accept_scalar=True),
                        required=True, description="states to wait for"),
        "fail_on": Field(ListOf(item=Choice(values=STATES), accept_scalar=True), default=[],
                         description="states that fail the step at once"),
        "timeout": Field(Duration(minimum=1, maximum=4 * 3600), default=1200.0,
                         description="how long to wait"),
    })
    outputs = {"state": "the state reached"}
    permissions = (_DESCRIBE,)
    verify = "the WorkSpace is in one of the states"

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        if ctx.facts.get("state") in params["states"]:
            return Plan(skip=f"the WorkSpace is already {ctx.facts['state']}")
        return Plan(calls(_DESCRIBE, mutating=False),
                    note=f"wait for {' or '.join(params['states'])}")

    def program(self, params: Mapping[str, Any]) -> Program:
        states, bad = list(params["states"]), list(params["fail_on"])
        it = Var("it")
        return program(
            Await("ws", "workspace", TARGET_ID, until=In(it.State, *states),
                  fail=((In(it.State, *bad), Fmt("it is ", it.State)),) if bad else (),
                  timeout=params["timeout"],
                  what=Fmt("WorkSpace ", TARGET_ID, f" {'/'.join(states)}")),
            Done({"state": WS.State}))
