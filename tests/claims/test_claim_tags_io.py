"""The claim tag's requests, per kind: what they ask AWS, and the permissions they declare."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from remediate.actions.contract import Target
from remediate.actions.requests import Call, Wait
from remediate.aws.apis import operation
from remediate.aws.resources import RESOURCES
from remediate.claims.tag import CLAIM_TAG
from remediate.claims.tag_io import CLAIM_TAGS
from remediate.kinds import KIND_NAMES

VALUE = "run=run-1 host=h pid=1 since=2024-07-19T05:30:00Z until=2024-07-19T05:45:00Z"


def requests(flow: Generator[Any, Any, Any], answers: dict[str, Any]) -> list[Any]:
    """Every request ``flow`` makes, each answered from ``answers`` by operation/resource."""
    made: list[Any] = []
    answer: Any = None
    try:
        while True:
            request = flow.send(answer)
            made.append(request)
            answer = answers[request.operation if isinstance(request, Call)
                             else request.resource]
    except StopIteration:
        return made


def iam(request: Any) -> str:
    if isinstance(request, Wait):
        resource = RESOURCES[request.resource]
        return operation(resource.service, resource.operation).iam_action
    return operation(request.service, request.operation).iam_action


def test_every_kind_has_a_claim_tag() -> None:
    assert set(CLAIM_TAGS) == set(KIND_NAMES)


@pytest.mark.parametrize("kind", sorted(CLAIM_TAGS))
def test_the_requests_need_only_the_declared_permissions(kind: str) -> None:
    tags = CLAIM_TAGS[kind]
    target = Target(kind, "id-1", "us-east-1")
    claimed = {"instance-claim": {"ResourceId": "id-1", "Key": CLAIM_TAG, "Value": VALUE},
               "DescribeTags": {"TagList": [{"Key": CLAIM_TAG, "Value": VALUE}]},
               "CreateTags": {}, "DeleteTags": {}}
    made = [*requests(tags.read(target), claimed), *requests(tags.write(target, VALUE), claimed),
            *requests(tags.remove(target, VALUE), claimed)]

    assert {iam(r) for r in made} == set(tags.permissions)
    assert all(operation(r.service, r.operation).mutating for r in made
               if isinstance(r, Call) and r.operation != "DescribeTags")


def test_ec2_claims_merge_and_are_removed_only_if_still_this_runs() -> None:
    tags = CLAIM_TAGS["ec2-instance"]
    target = Target("ec2-instance", "i-1", "us-east-1")
    done = {"CreateTags": {}, "DeleteTags": {}}
    (write,) = requests(tags.write(target, VALUE), done)
    (remove,) = requests(tags.remove(target, VALUE), done)

    assert (write.batch_key, remove.batch_key) == ("Resources", "Resources")
    assert remove.params == {"Resources": ["i-1"], "Tags": [{"Key": CLAIM_TAG, "Value": VALUE}]}


def test_a_workspace_claim_of_another_run_is_not_removed() -> None:
    target = Target("workspace", "ws-1", "us-east-1")
    other = {"DescribeTags": {"TagList": [{"Key": CLAIM_TAG, "Value": VALUE + "x"}]}}

    made = requests(CLAIM_TAGS["workspace"].remove(target, VALUE), other)

    assert [r.operation for r in made] == ["DescribeTags"]


def test_the_instance_claim_resource_lists_only_the_claim_tag() -> None:
    request = RESOURCES["instance-claim"].request(["i-1", "i-2"])

    assert request == {"Filters": [{"Name": "resource-id", "Values": ["i-1", "i-2"]},
                                   {"Name": "key", "Values": [CLAIM_TAG]}]}
