"""DescribeWorkspacesConnectionStatus, which moto lacks.

Shape and limits from botocore's ``workspaces/2015-04-08`` model: ``WorkspaceIds``,
1 to 25 of them; each answer has ``WorkspaceId``, ``ConnectionState`` (CONNECTED,
DISCONNECTED or UNKNOWN: "The connection state is unknown if the WorkSpace is
stopped") and ``ConnectionStateCheckTimestamp``. The sandbox has no users, so a
WorkSpace that is AVAILABLE is DISCONNECTED (it answers the connection check, no one
is signed in); in any other state the check cannot reach it: UNKNOWN (inference: AWS
documents UNKNOWN only for a stopped one).
"""

from __future__ import annotations

import json
from typing import Any, Final

from moto.workspaces.responses import WorkSpacesResponse

from remediate.sandbox import errors
from remediate.sandbox.patcher import Patcher
from remediate.sandbox.state import current

IDS_PER_CALL: Final = 25


def _connection_status(self: Any) -> str:
    ids = list(json.loads(self.body or "{}").get("WorkspaceIds") or [])
    if len(ids) > IDS_PER_CALL:
        raise errors.too_many_requests("WorkspaceIds", len(ids), IDS_PER_CALL)
    checked = current().clock.wall().timestamp()
    found = []
    for workspace_id in ids:
        workspace = self.workspaces_backend.workspaces.get(workspace_id)
        if workspace is None:
            continue
        state = "DISCONNECTED" if workspace.state == "AVAILABLE" else "UNKNOWN"
        found.append({"WorkspaceId": workspace_id, "ConnectionState": state,
                      "ConnectionStateCheckTimestamp": checked})
    return json.dumps({"WorkspacesConnectionStatus": found})


def install(patcher: Patcher) -> None:
    patcher.set(WorkSpacesResponse, "describe_workspaces_connection_status", _connection_status)
