"""WorkSpaces tags as AWS keeps them: one value per key, and DeleteTags.

moto's CreateTags appends to a WorkSpace's tag list (a second value for the same key
shows up as a duplicate) and moto has no DeleteTags. AWS overwrites the value of an
existing key, holds at most 50 tags per WorkSpace ("Each WorkSpaces resource can have
a maximum of 50 tags", WorkSpaces API reference, CreateTags) and deletes by key
(DeleteTags' ``TagKeys``). Other resource types keep moto's behaviour.
"""

from __future__ import annotations

import json
from typing import Any, Final

from moto.workspaces.responses import WorkSpacesResponse

from remediate.sandbox import errors
from remediate.sandbox.patcher import Patcher

MAX_TAGS: Final = 50


def _workspace(response: Any, params: dict[str, Any]) -> Any:
    workspace_id = str(params.get("ResourceId", ""))
    workspace = response.workspaces_backend.workspaces.get(workspace_id)
    if workspace is None:
        raise errors.workspace_not_found(workspace_id)
    return workspace


def _create(response: Any, original: Any) -> str:
    params = json.loads(response.body or "{}")
    if not str(params.get("ResourceId", "")).startswith("ws-"):
        return str(original(response))
    workspace = _workspace(response, params)
    tags = {t["Key"]: t.get("Value", "") for t in workspace.tags}
    tags.update({t["Key"]: t.get("Value", "") for t in params.get("Tags") or []})
    if len(tags) > MAX_TAGS:
        raise errors.SandboxError("ResourceLimitExceededException",
                                  "Your resource limits have been exceeded.")
    workspace.tags[:] = [{"Key": k, "Value": v} for k, v in tags.items()]
    return "{}"


def _delete(response: Any) -> str:
    params = json.loads(response.body or "{}")
    workspace = _workspace(response, params)
    gone = set(params.get("TagKeys") or [])
    workspace.tags[:] = [t for t in workspace.tags if t["Key"] not in gone]
    return "{}"


def install(patcher: Patcher) -> None:
    original = patcher.original(WorkSpacesResponse, "create_tags")

    def create_tags(self: Any) -> str:
        return _create(self, original)

    def delete_tags(self: Any) -> str:
        return _delete(self)

    patcher.set(WorkSpacesResponse, "create_tags", create_tags)
    patcher.set(WorkSpacesResponse, "delete_tags", delete_tags)
