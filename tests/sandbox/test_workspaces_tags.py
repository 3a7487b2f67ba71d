"""WorkSpaces tags in the sandbox as AWS keeps them: one value per key, DeleteTags, 50 at most."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from remediate.sandbox import FleetSpec, Sandbox


def test_create_overwrites_a_key_and_delete_removes_it(sandbox: Sandbox) -> None:
    (workspace,) = sandbox.build_fleet(FleetSpec(plain=0, workspaces=1, azs=1)).workspaces
    client = sandbox.client("workspaces")
    wid = workspace.workspace_id

    client.create_tags(ResourceId=wid, Tags=[{"Key": "owner", "Value": "a"}])
    client.create_tags(ResourceId=wid, Tags=[{"Key": "owner", "Value": "b"}])

    tags = client.describe_tags(ResourceId=wid)["TagList"]
    assert [t for t in tags if t["Key"] == "owner"] == [{"Key": "owner", "Value": "b"}]
    client.delete_tags(ResourceId=wid, TagKeys=["owner"])
    assert [t for t in client.describe_tags(ResourceId=wid)["TagList"]
            if t["Key"] == "owner"] == []


def test_a_51st_tag_and_an_unknown_workspace_are_refused(sandbox: Sandbox) -> None:
    (workspace,) = sandbox.build_fleet(FleetSpec(plain=0, workspaces=1, azs=1)).workspaces
    client = sandbox.client("workspaces")
    wid = workspace.workspace_id
    have = len(client.describe_tags(ResourceId=wid)["TagList"])
    client.create_tags(ResourceId=wid, Tags=[{"Key": f"k{n}", "Value": "v"}
                                             for n in range(50 - have)])

    with pytest.raises(ClientError) as full:
        client.create_tags(ResourceId=wid, Tags=[{"Key": "one-more", "Value": "v"}])
    with pytest.raises(ClientError) as unknown:
        client.delete_tags(ResourceId="ws-00000000", TagKeys=["owner"])

    assert full.value.response["Error"]["Code"] == "ResourceLimitExceededException"
    assert unknown.value.response["Error"]["Code"] == "ResourceNotFoundException"
