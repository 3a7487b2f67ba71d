"""Amazon WorkSpaces actions moto lacks, with AWS's state preconditions.

Adds Reboot/Start/Stop/Rebuild WorkSpaces and RestoreWorkspace to moto's
``WorkSpacesResponse``. Batch calls report ids they cannot act on in
``FailedRequests`` (as AWS does) instead of failing the call. Each WorkSpace
has a hidden condition (:class:`~remediate.sandbox.state.WorkspaceFacts`):
what repairs it. Transitions take :class:`Durations` on the sandbox clock.
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

INVALID_STATE = (
    "InvalidResourceState",
    "The specified WorkSpace has an invalid state for this operation.",
)
"""FailedRequests entry for an id in the wrong state (approximation of AWS's text)."""


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


def set_condition(world: World, region: str, workspace_id: str, fixed_by: str) -> None:
    """Break a WorkSpace (``reboot``/``restore``/``rebuild``) or stop it (``stopped``)."""
    workspace = _backend(region).workspaces[workspace_id]
    facts = world.workspace(workspace_id)
    facts.state_since = world.now()
    if fixed_by == "stopped":
        facts.fixed_by = "healthy"
        workspace.state = "STOPPED"
    else:
        facts.fixed_by = fixed_by
        workspace.state = "UNHEALTHY"


def _backend(region: str) -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID

    return workspaces_backends[DEFAULT_ACCOUNT_ID][region]


def _may_start(world: World, operation: _Operation, workspace: Any) -> bool:
    if workspace.state in operation.allowed:
        return True
    stuck_for = world.now() - world.workspace(workspace.workspace_id).state_since
    return (
        operation is REBOOT
        and workspace.state == "REBOOTING"
        and stuck_for >= world.durations.workspace_stuck_reboot
    )


def _begin(world: World, operation: _Operation, workspace: Any) -> None:
    facts = world.workspace(workspace.workspace_id)
    now = world.now()
    workspace.state = operation.transient
    facts.state_since = now

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
        if workspace is None:
            failed.append(
                {
                    "WorkspaceId": workspace_id,
                    "ErrorCode": "ResourceNotFound.Workspace",
                    "ErrorMessage": f"The WorkSpace {workspace_id} could not be found.",
                }
            )
        elif not _may_start(world, operation, workspace):
            code, message = INVALID_STATE
            failed.append({"WorkspaceId": workspace_id, "ErrorCode": code, "ErrorMessage": message})
        else:
            _begin(world, operation, workspace)
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
