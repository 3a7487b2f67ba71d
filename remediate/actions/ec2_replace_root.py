"""``ec2.replace_root``: swap the root volume for a fresh one with CreateReplaceRootVolumeTask.

It works on a running instance, keeping its instance store, ENIs and IAM role, so
it is the route for targets the volume swap must not stop (instance store,
one-time Spot). The new root comes from a snapshot, an AMI, an existing volume or
the launch state; whatever was written after that point is lost, hence the
``root-replacement-data-loss`` acknowledgement. The replaced volume is always
kept: remediate never deletes a customer volume, and keeping it is what makes the
step undoable (replace again with ``volume_id: <previous_volume_id>``).

Re-running finds its own task by tags (and AWS dedupes by client token) instead
of starting a second replacement.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from remediate.actions.contract import Action, Plan, StepContext
from remediate.actions.ec2_inspect import (
    Record,
    Steps,
    aws,
    existing,
    iam,
    instance_state,
    planned,
    root_mapping,
    tag_map,
)
from remediate.actions.ec2_power import timeout_field
from remediate.actions.ec2_volumes import VOLUME_ID
from remediate.actions.registry import register
from remediate.actions.requests import ActionRun, Call, StepFailed, wait_state
from remediate.actions.target_permissions import REPLACE_ROOT
from remediate.language.problems import Problem
from remediate.language.schema import Bool, Choice, Field, Str
from remediate.language.schema import Record as Schema

if TYPE_CHECKING:
    from remediate.export.fragment import AslStep, Fragment

SOURCES = ("snapshot_id", "image_id", "volume_id", "restore_to")
LIVE_TASK_STATES = frozenset({"pending", "in-progress", "succeeded"})
PREVIOUS_TAG = "remediate:previous-volume"


def _mine(task: Record, ctx: StepContext) -> bool:
    tags = tag_map(task)
    return tags.get("remediate:run-id") == ctx.run_id and tags.get("remediate:step", "") == (
        ctx.step_id or "")


def client_token(ctx: StepContext, attempt: int) -> str:
    """The same step on the same target sends the same token; a retry after a failed
    task sends a new one (AWS would otherwise hand back the failed task)."""
    seed = f"{ctx.run_id}/{ctx.target.key}/{ctx.step_id}/{attempt}"
    return hashlib.sha256(seed.encode()).hexdigest()[:64]


def _source(params: Mapping[str, Any]) -> dict[str, Any]:
    if params.get("snapshot_id"):
        return {"SnapshotId": params["snapshot_id"]}
    if params.get("image_id"):
        return {"ImageId": params["image_id"]}
    if params.get("volume_id"):
        return {"VolumeId": params["volume_id"]}
    return {}  # restore_to: launch-state


def _describe_source(params: Mapping[str, Any]) -> str:
    for key in SOURCES[:3]:
        if params.get(key):
            return f"from {params[key]}"
    return "to its launch state"


@register
class ReplaceRoot(Action):
    """Replace the root volume of a running instance; the old one is kept, detached."""

    name = "ec2.replace_root"
    summary = "replace the root volume (from a snapshot, AMI, volume or launch state)"
    params = Schema(fields={
        "snapshot_id": Field(Str(pattern=r"snap-[0-9a-f]{8,17}", pattern_name="a snapshot id",
                                 templated=True),
                             description="restore the new root from this snapshot of the "
                                         "original root volume"),
        "image_id": Field(Str(pattern=r"ami-[0-9a-f]{8,17}", pattern_name="an AMI id",
                              templated=True),
                          description="restore the new root from this AMI (same product "
                                      "codes and architecture as the instance)"),
        "volume_id": Field(VOLUME_ID, description=(
            "use this available volume in the instance's zone as the new root (e.g. the "
            "previous_volume_id of an earlier replacement, to undo it)")),
        "restore_to": Field(Choice(values=("launch-state",)), description=(
            "launch-state: restore the root volume to how it was at launch")),
        "delete_replaced_root_volume": Field(Bool(), default=False, description=(
            "always false: remediate keeps the replaced root volume")),
        "timeout": timeout_field("1h", "how long the replacement may take"),
    })
    outputs = {"task_id": "the replace-root-volume task",
               "volume_id": "the new root volume",
               "previous_volume_id": "the replaced root volume, kept detached"}
    permissions = iam("ec2:DescribeInstances", "ec2:DescribeReplaceRootVolumeTasks",
                      "ec2:CreateReplaceRootVolumeTask", "ec2:CreateTags")
    # On the targets; tags only the task it creates.
    scoped_permissions = REPLACE_ROOT
    mutating = True
    start_states = frozenset({"running"})
    destructive = "root-replacement-data-loss"
    verify = "the task reaches 'succeeded'"
    undo = "ec2.replace_root"

    def validate(self, params: Mapping[str, Any], base_dir: str) -> list[Problem]:
        problems: list[Problem] = []
        given = [key for key in SOURCES if params.get(key)]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            problems.append(Problem((), "expected exactly one of snapshot_id, image_id, "
                                        f"volume_id, restore_to: launch-state; found {found}"))
        if params.get("delete_replaced_root_volume") is True:
            problems.append(Problem(("delete_replaced_root_volume",),
                                    "remediate never deletes a customer volume; the replaced "
                                    "root volume is kept (delete it yourself once you have "
                                    "checked it)"))
        return problems

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        note = ""
        if ctx.facts.get("state") not in (None, "running"):
            note = (f"the instance is {ctx.facts['state']}: replacement needs it running, "
                    "so this step would fail")
        return Plan(calls=planned("ec2:CreateReplaceRootVolumeTask",
                                  note=f"replace the root of {ctx.target.id} "
                                       f"{_describe_source(params)}"), note=note)

    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        iid = ctx.target.id
        if params.get("delete_replaced_root_volume"):
            raise StepFailed("remediate never deletes a customer volume: "
                             "delete_replaced_root_volume must be false")
        instance = yield from existing("instance", iid, "instance")
        tasks = yield from aws(Call("ec2", "DescribeReplaceRootVolumeTasks", {
            "Filters": [{"Name": "instance-id", "Values": [iid]}]}), iid)
        mine = [t for t in tasks.get("ReplaceRootVolumeTasks") or [] if _mine(t, ctx)]
        live = [t for t in mine if t.get("TaskState") in LIVE_TASK_STATES]
        if live:
            task = max(live, key=lambda t: str(t.get("StartTime", "")))
            task_id = task["ReplaceRootVolumeTaskId"]
            previous = tag_map(task).get(PREVIOUS_TAG)
        else:
            task_id, previous = yield from self._create(ctx, params, instance, attempt=len(mine))
        yield wait_state("replace-root-task", task_id, "succeeded",
                         fail_on=("failed", "failed-detached", "missing"),
                         timeout=params["timeout"])
        instance = yield from existing("instance", iid, "instance")
        new_root = (root_mapping(instance) or {}).get("VolumeId")
        return {"task_id": task_id, "volume_id": new_root, "previous_volume_id": previous}

    def _create(self, ctx: StepContext, params: Mapping[str, Any], instance: Record,
                attempt: int) -> Steps:
        iid = ctx.target.id
        state = instance_state(instance)
        if state != "running":
            raise StepFailed(f"{iid} is {state}: root-volume replacement needs a running "
                             "instance; start it first (ec2.start)")
        previous = (root_mapping(instance) or {}).get("VolumeId") or ""
        tags = {"remediate:run-id": ctx.run_id, "remediate:target": iid, PREVIOUS_TAG: previous}
        if ctx.step_id:
            tags["remediate:step"] = ctx.step_id
        response = yield from aws(Call("ec2", "CreateReplaceRootVolumeTask", {
            "InstanceId": iid,
            **_source(params),
            "DeleteReplacedRootVolume": False,
            "ClientToken": client_token(ctx, attempt),
            "TagSpecifications": [{"ResourceType": "replace-root-volume-task",
                                   "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
        }, note=f"replace the root of {iid} {_describe_source(params)}"), iid)
        task = response.get("ReplaceRootVolumeTask") or {}
        return task["ReplaceRootVolumeTaskId"], previous or None

    def asl(self, step: AslStep) -> Fragment:
        from remediate.export.fragments import ec2_replace_root

        return ec2_replace_root.replace_root(step)
