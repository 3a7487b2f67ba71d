"""Amazon WorkSpaces actions moto lacks, with AWS's state preconditions.

Adds Reboot/Start/Stop/Rebuild WorkSpaces and RestoreWorkspace to moto's
``WorkSpacesResponse``, each allowed from the states its API reference names
(docs.aws.amazon.com/workspaces/latest/api/API_<Operation>.html, the same text as
botocore's ``workspaces/2015-04-08/service-2.json``): Start only from STOPPED and
Stop only from AVAILABLE, IMPAIRED, UNHEALTHY or ERROR, both only in the AutoStop or
Manual running mode; Reboot from AVAILABLE or UNHEALTHY, or REBOOTING once stuck
there over 20 minutes; Restore from AVAILABLE, ERROR, UNHEALTHY or STOPPED; Rebuild
from those and REBOOTING. Batch calls report ids they cannot act on in
``FailedRequests`` (as AWS does) instead of failing the call; RestoreWorkspace, which
has no such list, answers OperationNotSupportedException (the state error its API
reference declares).

Each WorkSpace has a hidden condition (:class:`~remediate.sandbox.state.WorkspaceFacts`):
what repairs it. A broken one stays broken through a start (an AutoStop WorkSpace in a
boot loop that was stopped comes back UNHEALTHY, as it went). Transitions take
:class:`Durations` on the sandbox clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moto.workspaces.models import workspaces_backends
from moto.workspaces.responses import WorkSpacesResponse

from remediate.sandbox import errors
from remediate.sandbox.patcher import Patcher
from remediate.sandbox.state import World, current

# FailedRequests entries. AWS documents no ErrorCode values for them
# (API_FailedWorkspaceChangeRequest.html: "The error code that is returned if the
# WorkSpace cannot be rebooted"): these use the WorkSpaces exception shapes that say the
# same thing, with the text botocore's model documents for each.
INVALID_STATE = ("InvalidResourceStateException",
                 "The state of the resource is not valid for this operation.")
"""An id in a state the operation does not start from."""
NOT_FOUND = ("ResourceNotFoundException", "The resource could not be found.")
"""An id the account does not have."""
WRONG_RUNNING_MODE = ("OperationNotSupportedException", "This operation is not supported.")
"""Start/Stop of a WorkSpace whose running mode is ALWAYS_ON."""
STOPPABLE_MODES = frozenset({"AUTO_STOP", "MANUAL"})
"""StartWorkspaces/StopWorkspaces: "unless it has a running mode of AutoStop or Manual"."""


@dataclass(frozen=True)
class _Operation:
    """One WorkSpaces state change: where it may start, what it passes through."""

    name: str
    request_field: str
    limit: int
    allowed: frozenset[str]
    transient: str
    duration: Callable[[World], float]
    repairs: frozenset[str]
    """Conditions this operation repairs (``healthy`` always ends healthy)."""
    failed_state: str = "UNHEALTHY"
    """Where a WorkSpace this operation does not repair ends up."""
    final_state: str = "AVAILABLE"
    running_modes: frozenset[str] | None = None
    """The running modes it accepts (None: any)."""


REBOOT = _Operation(
    "RebootWorkspaces",
    "RebootWorkspaceRequests",
    25,
    frozenset({"AVAILABLE", "UNHEALTHY"}),
    "REBOOTING",
    lambda w: w.durations.workspace_reboot,
    frozenset({"reboot"}),
)
START = _Operation(
    "StartWorkspaces",
    "StartWorkspaceRequests",
    25,
    frozenset({"STOPPED"}),
    "STARTING",
    lambda w: w.durations.workspace_start,
    frozenset(),
    running_modes=STOPPABLE_MODES,
)
STOP = _Operation(
    "StopWorkspaces",
    "StopWorkspaceRequests",
    25,
    frozenset({"AVAILABLE", "IMPAIRED", "UNHEALTHY", "ERROR"}),
    "STOPPING",
    lambda w: w.durations.workspace_stop,
    frozenset(),
    final_state="STOPPED",
    running_modes=STOPPABLE_MODES,
)
REBUILD = _Operation(
    "RebuildWorkspaces",
    "RebuildWorkspaceRequests",
    1,
    frozenset({"AVAILABLE", "ERROR", "UNHEALTHY", "STOPPED", "REBOOTING"}),
    "REBUILDING",
    lambda w: w.durations.workspace_rebuild,
    frozenset({"reboot", "restore", "rebuild"}),
)
RESTORE = _Operation(
    "RestoreWorkspace",
    "WorkspaceId",
    1,
    frozenset({"AVAILABLE", "ERROR", "UNHEALTHY", "STOPPED"}),
    "RESTORING",
    lambda w: w.durations.workspace_restore,
    frozenset({"reboot", "restore"}),
    failed_state="ERROR",
)


STOPPED = "stopped"


def set_condition(world: World, region: str, workspace_id: str, condition: str) -> None:
    """Break a WorkSpace (``reboot``/``restore``/``rebuild``: what repairs it), stop a
    healthy one (``stopped``) or a broken one (``stopped-reboot``...: an AutoStop
    WorkSpace in the boot loop, stopped; it starts UNHEALTHY) or leave it AVAILABLE
    (``healthy``)."""
    workspace = _backend(region).workspaces[workspace_id]
    facts = world.workspace(workspace_id)
    facts.state_since = world.now()
    if condition == "healthy":
        workspace.state, facts.fixed_by = "AVAILABLE", "healthy"
    elif condition.startswith(STOPPED):
        workspace.state = "STOPPED"
        facts.fixed_by = condition.removeprefix(STOPPED).removeprefix("-") or "healthy"
    else:
        workspace.state = "UNHEALTHY"
        facts.fixed_by = condition


def _backend(region: str) -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID

    return workspaces_backends[DEFAULT_ACCOUNT_ID][region]


def _may_start(world: World, operation: _Operation, workspace: Any) -> bool:
    if workspace.state in operation.allowed:
        return True
    stuck_for = world.now() - world.workspace(workspace.workspace_id).state_since
    # "only if your WorkSpace has been stuck in the REBOOTING state for over 20 minutes"
    return (
        operation is REBOOT
        and workspace.state == "REBOOTING"
        and stuck_for > world.durations.workspace_stuck_reboot
    )


def _running_mode(workspace: Any) -> str:
    return str((workspace.workspace_properties or {}).get("RunningMode", "ALWAYS_ON"))


def _refusal(world: World, operation: _Operation, workspace: Any) -> tuple[str, str] | None:
    """Why AWS refuses ``operation`` for ``workspace`` (code, message), or None."""
    if operation.running_modes is not None and (
            _running_mode(workspace) not in operation.running_modes):
        return WRONG_RUNNING_MODE
    return None if _may_start(world, operation, workspace) else INVALID_STATE


def _begin(world: World, operation: _Operation, workspace: Any) -> None:
    facts = world.workspace(workspace.workspace_id)
    now = world.now()
    workspace.state = operation.transient
    facts.state_since = now
    facts.changes.append(operation.name)

    def finish(at: float) -> None:
        if workspace.state != operation.transient:
            return
        if operation.final_state == "STOPPED":
            workspace.state = "STOPPED"
        elif facts.fixed_by == "healthy" or facts.fixed_by in operation.repairs:
            facts.fixed_by = "healthy"
            workspace.state = operation.final_state
        else:
            workspace.state = operation.failed_state
        facts.state_since = at

    world.timeline.schedule(
        ("workspace", workspace.workspace_id), now + operation.duration(world), finish
    )


def _batch(response: Any, operation: _Operation) -> str:
    params = json.loads(response.body or "{}")
    requests = params.get(operation.request_field) or []
    if len(requests) > operation.limit:
        raise errors.too_many_requests(operation.request_field, len(requests), operation.limit)
    world = current()
    backend = response.workspaces_backend
    failed = []
    for request in requests:
        workspace_id = request.get("WorkspaceId", "")
        workspace = backend.workspaces.get(workspace_id)
        refusal = NOT_FOUND if workspace is None else _refusal(world, operation, workspace)
        if refusal is None:
            _begin(world, operation, workspace)
        else:
            code, message = refusal
            failed.append({"WorkspaceId": workspace_id, "ErrorCode": code, "ErrorMessage": message})
    return json.dumps({"FailedRequests": failed})


def _restore(response: Any) -> str:
    workspace_id = json.loads(response.body or "{}").get("WorkspaceId", "")
    workspace = response.workspaces_backend.workspaces.get(workspace_id)
    if workspace is None:
        raise errors.workspace_not_found(workspace_id)
    world = current()
    if not _may_start(world, RESTORE, workspace):
        raise errors.workspace_bad_state(workspace_id, workspace.state)
    _begin(world, RESTORE, workspace)
    return json.dumps({})


def install(patcher: Patcher) -> None:
    def handler(operation: _Operation) -> Callable[[Any], str]:
        def handle(self: Any) -> str:
            return _batch(self, operation)

        handle.__name__ = operation.name
        return handle

    patcher.set(WorkSpacesResponse, "reboot_workspaces", handler(REBOOT))
    patcher.set(WorkSpacesResponse, "start_workspaces", handler(START))
    patcher.set(WorkSpacesResponse, "stop_workspaces", handler(STOP))
    patcher.set(WorkSpacesResponse, "rebuild_workspaces", handler(REBUILD))
    patcher.set(WorkSpacesResponse, "restore_workspace", _restore)
