"""Reading, writing and removing the claim tag, per kind of target, as requests.

Like actions, these are generators that ``yield`` :class:`Call` / :class:`Wait`
requests: the executor sends them (paced to AWS's buckets, merged across targets,
journaled when they mutate), so claims cost what AWS allows and no more.

* EC2 instances: the claim is read with DescribeTags (only this tag, 200 instances a
  call), written with CreateTags and removed with DeleteTags, both up to 1,000
  instances a call when the value is the same. DeleteTags names the value: EC2 deletes the tag
  only if it still has that value ("Specify a tag key and an optional tag value to
  delete specific tags", EC2 API reference, DeleteTags), so a run never removes
  another run's claim.
* WorkSpaces: DescribeTags, CreateTags and DeleteTags take one WorkSpace a call, and
  DeleteTags takes keys only, so removal reads the value first (a claim written by
  another run between that read and the delete would be lost; the other run's
  renewal writes it again).

A lost reply is not resent: the claim is read back (or renewed, or left to expire)
anyway, which settles what the write did (``on_unknown="reconcile"``; the caller
takes :class:`OutcomeUnknown` as "see what the read says").

Neither service offers a conditional write: two runs that write their claims at the
same moment both succeed, the last one wins. :mod:`remediate.executor.claiming` reads
the claim back after a settle delay to find out which.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any, Protocol

from remediate.actions.contract import Target
from remediate.actions.requests import Call, observe
from remediate.claims.tag import CLAIM_TAG

Flow = Generator[Any, Any, Any]


def _value(tags: Any) -> str | None:
    for tag in tags or ():
        if isinstance(tag, Mapping) and tag.get("Key") == CLAIM_TAG:
            return str(tag.get("Value", ""))
    return None


class ClaimTags(Protocol):
    # The IAM actions the claim needs, on the targets, for the tag key CLAIM_TAG only
    # (for remediate.permissions; the tests check the requests against them).
    permissions: tuple[str, ...]
    # The (service, operation) that writes a claim: its bucket paces the claim round.
    write_api: tuple[str, str]

    def read(self, target: Target) -> Generator[Any, Any, str | None]:
        """The claim tag's value on ``target`` (None: no claim)."""

    def write(self, target: Target, value: str) -> Flow:
        """Set the claim tag to ``value``."""

    def remove(self, target: Target, value: str) -> Flow:
        """Remove the claim tag if it still holds ``value``."""


class InstanceTags:
    permissions: tuple[str, ...] = ("ec2:DescribeTags", "ec2:CreateTags", "ec2:DeleteTags")
    write_api = ("ec2", "CreateTags")

    def read(self, target: Target) -> Generator[Any, Any, str | None]:
        record = yield observe("instance-claim", target.id)
        return str(record.get("Value", "")) if record else None

    def write(self, target: Target, value: str) -> Flow:
        yield Call("ec2", "CreateTags", {"Resources": [target.id],
                                         "Tags": [{"Key": CLAIM_TAG, "Value": value}]},
                   batch_key="Resources", note=f"claim {target.id}", on_unknown="reconcile")

    def remove(self, target: Target, value: str) -> Flow:
        yield Call("ec2", "DeleteTags", {"Resources": [target.id],
                                         "Tags": [{"Key": CLAIM_TAG, "Value": value}]},
                   batch_key="Resources", note=f"release {target.id}", on_unknown="reconcile")


class WorkspaceTags:
    permissions: tuple[str, ...] = ("workspaces:DescribeTags", "workspaces:CreateTags",
                                    "workspaces:DeleteTags")
    write_api = ("workspaces", "CreateTags")

    def read(self, target: Target) -> Generator[Any, Any, str | None]:
        response = yield Call("workspaces", "DescribeTags", {"ResourceId": target.id})
        return _value(response.get("TagList"))

    def write(self, target: Target, value: str) -> Flow:
        yield Call("workspaces", "CreateTags", {"ResourceId": target.id,
                                                "Tags": [{"Key": CLAIM_TAG, "Value": value}]},
                   note=f"claim {target.id}", on_unknown="reconcile")

    def remove(self, target: Target, value: str) -> Flow:
        if (yield from self.read(target)) == value:
            yield Call("workspaces", "DeleteTags", {"ResourceId": target.id,
                                                    "TagKeys": [CLAIM_TAG]},
                       note=f"release {target.id}", on_unknown="reconcile")


# Target kind -> its claim tag's requests.
CLAIM_TAGS: Mapping[str, ClaimTags] = {"ec2-instance": InstanceTags(),
                                       "workspace": WorkspaceTags()}
