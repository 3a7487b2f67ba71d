"""Amazon WorkSpaces (Personal): inspect, start, reboot, restore, rebuild, wait.

AWS's own runbook (``AWSSupport-RecoverWorkSpace``) goes start if stopped ->
reboot -> restore -> rebuild, each gated by the WorkSpace's state; these actions
are those steps. The batch APIs report refusals in ``FailedRequests`` rather
than as errors: each becomes a StepFailed with AWS's code and message. A
WorkSpace found already in the transition an action would start (after a crash,
say) is waited for instead of being sent the request again; one REBOOTING for
over 20 minutes counts as stuck (UNHEALTHY) and may be rebooted again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from remediate.actions.contract import Action, Plan, StepContext, calls
from remediate.actions.ec2_inspect import batch_limits
from remediate.actions.registry import register
from remediate.actions.requests import (
    ActionRun,
    Call,
    StepFailed,
    Wait,
    WaitTimeout,
    observe,
    state_of,
)
from remediate.actions.rescue_pool import Pulled
from remediate.actions.target_permissions import on_workspaces
from remediate.kinds import KINDS
from remediate.language.schema import Bool, Choice, Duration, Field, ListOf, Record

KIND: Final = frozenset({"workspace"})
STATES: Final = (
    "PENDING", "AVAILABLE", "IMPAIRED", "UNHEALTHY", "REBOOTING", "STARTING", "REBUILDING",
    "RESTORING", "MAINTENANCE", "ADMIN_MAINTENANCE", "TERMINATING", "TERMINATED", "SUSPENDED",
    "UPDATING", "STOPPING", "STOPPED", "ERROR",
)
# A WorkSpace REBOOTING longer than this is stuck: AWS lets it be rebooted again.
STUCK_REBOOT: Final = 1200.0
# How long a WorkSpace may take to show the state change a request started.
_ENTER_TIMEOUT: Final = 120.0
_DESCRIBE = "workspaces:DescribeWorkspaces"


def _state(record: Mapping[str, Any] | None) -> str:
    return state_of("workspace", record)


def _observe(workspace_id: str) -> Pulled:
    record = yield observe("workspace", workspace_id)
    if record is None:
        raise StepFailed(f"WorkSpace {workspace_id} does not exist")
    return record


def _left(workspace_id: str, state: str, timeout: float) -> Wait:
    return Wait("workspace", workspace_id, until=lambda r: _state(r) != state, timeout=timeout,
                what=f"WorkSpace {workspace_id} no longer {state}")


def _through(workspace_id: str, before: str, transient: str, timeout: float) -> Pulled:
    """The record once the WorkSpace has left ``before`` and then ``transient``.

    Waiting for the change first keeps a reboot of an AVAILABLE WorkSpace from
    counting as done before AWS shows it REBOOTING. Returns the current record
    (still transient) when ``timeout`` runs out.
    """
    if before != transient:
        # If it never shows the change, judge by what it is now.
        with contextlib.suppress(WaitTimeout):
            yield _left(workspace_id, before, _ENTER_TIMEOUT)
    try:
        return (yield _left(workspace_id, transient, timeout))
    except WaitTimeout:
        return (yield from _observe(workspace_id))


def check_failed_requests(response: Mapping[str, Any], workspace_id: str, operation: str) -> None:
    """Raise StepFailed if a (possibly batched) response refused ``workspace_id``."""
    for failed in response.get("FailedRequests") or []:
        if failed.get("WorkspaceId") == workspace_id:
            raise StepFailed(f"{operation} refused {workspace_id}: "
                             f"{failed.get('ErrorCode', 'unknown')}: "
                             f"{failed.get('ErrorMessage', '')}".rstrip(": "))


TIMEOUT_DOC = "how long to wait for the WorkSpace to settle"
REQUIRE_HEALTHY = Field(Bool(), default=False,
                        description="fail the step unless the WorkSpace ends AVAILABLE "
                                    "(false: report it in outputs.healthy)")
RECOVERY_OUTPUTS: Final = {
    "healthy": "whether the WorkSpace ended AVAILABLE",
    "state": "its state at the end",
}


@register
class Inspect(Action):
    name = "workspaces.inspect"
    summary = "Read a WorkSpace's facts (state, directory, bundle, user, running mode, tags)."
    kinds = KIND
    outputs = dict(KINDS["workspace"].facts)
    permissions = (_DESCRIBE, "workspaces:DescribeTags")
    verify = "the WorkSpace exists"

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        return Plan(calls(_DESCRIBE, "workspaces:DescribeTags", mutating=False))

    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        record = yield from _observe(ctx.target.id)
        tags = yield Call("workspaces", "DescribeTags", {"ResourceId": ctx.target.id})
        return {
            "id": ctx.target.id,
            "region": ctx.target.region,
            "account": ctx.target.account,
            "state": _state(record),
            "tags": {t["Key"]: t.get("Value", "") for t in tags.get("TagList", [])},
            "directory_id": record.get("DirectoryId"),
            "bundle_id": record.get("BundleId"),
            "user_name": record.get("UserName"),
            "computer_name": record.get("ComputerName"),
            "running_mode": (record.get("WorkspaceProperties") or {}).get("RunningMode"),
        }


@register
class Start(Action):
    name = "workspaces.start"
    summary = "Start a STOPPED WorkSpace and wait until it is AVAILABLE (others are skipped)."
    kinds = KIND
    params = Record(fields={
        "timeout": Field(Duration(minimum=60, maximum=4 * 3600), default=1200.0,
                         description=TIMEOUT_DOC),
    })
    outputs = {"started": "whether a start was needed", "state": "its state at the end"}
    permissions = (_DESCRIBE, "workspaces:StartWorkspaces")
    scoped_permissions = (on_workspaces("workspaces:StartWorkspaces"),)
    mutating = True
    batches = batch_limits("workspaces:StartWorkspaces")
    verify = "the WorkSpace is AVAILABLE"

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        state = ctx.facts.get("state")
        if state != "STOPPED":
            return Plan(skip=f"the WorkSpace is {state}, not STOPPED")
        return Plan(calls("workspaces:StartWorkspaces"), note="start it, wait AVAILABLE")

    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        workspace_id = ctx.target.id
        record = yield from _observe(workspace_id)
        state = _state(record)
        if state not in ("STOPPED", "STARTING"):
            return {"started": False, "state": state}
        if state == "STOPPED":
            response = yield Call(
                "workspaces", "StartWorkspaces",
                {"StartWorkspaceRequests": [{"WorkspaceId": workspace_id}]},
                batch_key="StartWorkspaceRequests", note=f"start {workspace_id}")
            check_failed_requests(response, workspace_id, "StartWorkspaces")
        record = yield from _through(workspace_id, state, "STARTING", params["timeout"])
        if _state(record) != "AVAILABLE":
            raise StepFailed(f"WorkSpace {workspace_id} is {_state(record)} after starting, "
                             "not AVAILABLE")
        return {"started": True, "state": "AVAILABLE"}


class _Recovery(Action):
    """Reboot, restore and rebuild: one request, one transitional state, then settled."""

    kinds = KIND
    mutating = True
    operation: ClassVar[str]
    transient: ClassVar[str]
    allowed: ClassVar[frozenset[str]]
    # Whether a WorkSpace stuck in ``transient`` (past in_flight_timeout) may be sent it again.
    restart_when_stuck: ClassVar[bool] = False
    verify = "the WorkSpace is AVAILABLE (outputs.healthy)"

    def request(self, workspace_id: str) -> Call:
        raise NotImplementedError

    def in_flight_timeout(self, params: Mapping[str, Any]) -> float:
        """How long to wait for a transition already under way before starting one."""
        return float(params["timeout"])

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        state = ctx.facts.get("state")
        note = f"{self.operation}, wait until it leaves {self.transient}"
        if state not in self.start_states:
            note += f"; would fail: the WorkSpace is {state}"
        return Plan(calls(f"workspaces:{self.operation}"), note=note)

    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        workspace_id = ctx.target.id
        record = yield from _observe(workspace_id)
        state = _state(record)
        if state == self.transient:
            # Already under way (ours before a crash, or someone else's): wait for it.
            try:
                record = yield _left(workspace_id, state, self.in_flight_timeout(params))
                return self._result(workspace_id, record, params)
            except WaitTimeout:
                if not self.restart_when_stuck:
                    record = yield from _observe(workspace_id)
                    return self._result(workspace_id, record, params)
        elif state not in self.allowed:
            raise StepFailed(f"WorkSpace {workspace_id} is {state}: {self.operation} needs "
                             f"{self._allowed_text()}")
        response = yield self.request(workspace_id)
        check_failed_requests(response, workspace_id, self.operation)
        record = yield from _through(workspace_id, state, self.transient, params["timeout"])
        return self._result(workspace_id, record, params)

    def _allowed_text(self) -> str:
        text = ", ".join(sorted(self.allowed))
        if self.restart_when_stuck:
            text += f" (or {self.transient} for over {STUCK_REBOOT / 60:g} minutes)"
        return text

    def _result(self, workspace_id: str, record: Mapping[str, Any] | None,
                params: Mapping[str, Any]) -> dict[str, Any]:
        state = _state(record)
        if params["require_healthy"] and state != "AVAILABLE":
            raise StepFailed(f"WorkSpace {workspace_id} is {state} after {self.operation}, "
                             "not AVAILABLE")
        return {"healthy": state == "AVAILABLE", "state": state}


def _recovery_params(timeout: float) -> Record:
    return Record(fields={
        "timeout": Field(Duration(minimum=60, maximum=4 * 3600), default=timeout,
                         description=TIMEOUT_DOC),
        "require_healthy": REQUIRE_HEALTHY,
    })


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
    operation = "RebootWorkspaces"
    transient = "REBOOTING"
    allowed = frozenset({"AVAILABLE", "UNHEALTHY"})
    restart_when_stuck = True  # REBOOTING for over STUCK_REBOOT counts as UNHEALTHY

    def request(self, workspace_id: str) -> Call:
        return Call("workspaces", "RebootWorkspaces",
                    {"RebootWorkspaceRequests": [{"WorkspaceId": workspace_id}]},
                    batch_key="RebootWorkspaceRequests", note=f"reboot {workspace_id}")

    def in_flight_timeout(self, params: Mapping[str, Any]) -> float:
        return STUCK_REBOOT


@register
class Restore(_Recovery):
    name = "workspaces.restore"
    summary = ("Restore a WorkSpace to its last healthy snapshot (loses up to 12 hours of user "
               "data) and wait until it settles.")
    params = _recovery_params(3600.0)
    outputs = RECOVERY_OUTPUTS
    permissions = (_DESCRIBE, "workspaces:RestoreWorkspace")
    scoped_permissions = (on_workspaces("workspaces:RestoreWorkspace"),)
    start_states = frozenset({"AVAILABLE", "ERROR", "UNHEALTHY", "STOPPED", "RESTORING"})
    destructive = "workspace-restore-data-loss"
    risks = frozenset({"workspace-restore-data-loss"})
    operation = "RestoreWorkspace"
    transient = "RESTORING"
    allowed = frozenset({"AVAILABLE", "ERROR", "UNHEALTHY", "STOPPED"})

    def request(self, workspace_id: str) -> Call:
        return Call("workspaces", "RestoreWorkspace", {"WorkspaceId": workspace_id},
                    note=f"restore {workspace_id}")


@register
class Rebuild(_Recovery):
    name = "workspaces.rebuild"
    summary = ("Rebuild a WorkSpace (root volume from the bundle image, user volume from its "
               "last snapshot) and wait until it settles; up to an hour.")
    params = _recovery_params(5400.0)
    outputs = RECOVERY_OUTPUTS
    permissions = (_DESCRIBE, "workspaces:RebuildWorkspaces")
    scoped_permissions = (on_workspaces("workspaces:RebuildWorkspaces"),)
    batches = batch_limits("workspaces:RebuildWorkspaces")
    start_states = frozenset({"AVAILABLE", "ERROR", "UNHEALTHY", "STOPPED", "REBOOTING",
                              "REBUILDING"})
    destructive = "workspace-rebuild-data-loss"
    risks = frozenset({"workspace-rebuild-data-loss"})
    operation = "RebuildWorkspaces"
    transient = "REBUILDING"
    allowed = frozenset({"AVAILABLE", "ERROR", "UNHEALTHY", "STOPPED", "REBOOTING"})

    def request(self, workspace_id: str) -> Call:
        return Call("workspaces", "RebuildWorkspaces",
                    {"RebuildWorkspaceRequests": [{"WorkspaceId": workspace_id}]},
                    batch_key="RebuildWorkspaceRequests", note=f"rebuild {workspace_id}")


@register
class WaitState(Action):
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

    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        wanted, bad = frozenset(params["states"]), frozenset(params["fail_on"])
        record = yield Wait(
            "workspace", ctx.target.id,
            until=lambda r: _state(r) in wanted,
            failed=lambda r: f"it is {_state(r)}" if _state(r) in bad else None,
            timeout=params["timeout"],
            what=f"WorkSpace {ctx.target.id} {'/'.join(params['states'])}",
        )
        return {"state": _state(record)}
