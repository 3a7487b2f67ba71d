"""``ec2.replace_root``: swap the root volume for a fresh one with CreateReplaceRootVolumeTask.

It works on a running instance, keeping its instance store, ENIs and IAM role, so
it is the route for targets the volume swap must not stop (instance store,
one-time Spot). The new root comes from a snapshot, an AMI, an existing volume or
the launch state; whatever was written after that point is lost, hence the
``root-replacement-data-loss`` acknowledgement. The replaced volume is always
kept: remediate never deletes a customer volume, and keeping it is what makes the
step undoable (replace again with ``volume_id: <previous_volume_id>``).

Re-running (a resumed run, a retried step, on either engine) finds its own task by
its tags (run, step) and waits for it instead of starting a second replacement; a
reply AWS lost is resent with the same ClientToken, and AWS answers with the task the
lost call started. The token changes after a task of the step failed, so a retry
starts a new one instead of being handed the failed one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from remediate.actions import instance_flows as flows
from remediate.actions.contract import Plan, StepContext
from remediate.actions.ec2_inspect import iam, planned
from remediate.actions.ec2_power import timeout_field
from remediate.actions.ec2_volumes import SNAPSHOT_ID, VOLUME_ID
from remediate.actions.list_flows import each, tag
from remediate.actions.program import (
    TARGET_ID,
    All,
    AnyOf,
    Await,
    Done,
    Eq,
    Exists,
    Expr,
    Fail,
    Fmt,
    Get,
    If,
    In,
    Not,
    Plus,
    Program,
    Same,
    Send,
    Seq,
    Set,
    Sha256,
    Var,
    program,
)
from remediate.actions.programmed import ProgramAction
from remediate.actions.registry import register
from remediate.actions.target_permissions import REPLACE_ROOT
from remediate.language.problems import Problem
from remediate.language.schema import Bool, Choice, Field, Str
from remediate.language.schema import Record as Schema

SOURCES = ("snapshot_id", "image_id", "volume_id", "restore_to")
LIVE_TASK_STATES = frozenset({"pending", "in-progress", "succeeded"})
PREVIOUS_TAG = "remediate:previous-volume"


_FIELDS = {"snapshot_id": "SnapshotId", "image_id": "ImageId", "volume_id": "VolumeId"}


def _source(params: Mapping[str, Any]) -> dict[str, Expr]:
    """What the new root is made from (none: the launch state)."""
    given = next((key for key in _FIELDS if params.get(key)), None)
    return {_FIELDS[given]: Var(f"params.{given}")} if given else {}


def _describe_source(params: Mapping[str, Any]) -> Expr:
    given = next((key for key in _FIELDS if params.get(key)), None)
    return Fmt("from ", Var(f"params.{given}")) if given else "to its launch state"


@register
class ReplaceRoot(ProgramAction):
    """Replace the root volume of a running instance; the old one is kept, detached."""

    name = "ec2.replace_root"
    summary = "replace the root volume (from a snapshot, AMI, volume or launch state)"
    params = Schema(fields={
        "snapshot_id": Field(SNAPSHOT_ID,
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
    finds_its_request = True  # the task it creates is tagged with the run and step
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
        source = next((f"from {params[key]}" for key in _FIELDS if params.get(key)),
                      "to its launch state")
        return Plan(calls=planned("ec2:CreateReplaceRootVolumeTask",
                                  note=f"replace the root of {ctx.target.id} {source}"),
                    note=note)

    def program(self, params: Mapping[str, Any]) -> Program:
        if params.get("delete_replaced_root_volume"):
            return program(Fail("remediate never deletes a customer volume: "
                                "delete_replaced_root_volume must be false"))
        task_id, after, it = Var("vars.task_id"), Var("vars.after"), Var("it")
        return program(
            *flows.read_instance("instance", TARGET_ID),
            # A run again (resumed, retried, a reply AWS lost) takes up this step's task.
            Get("tasks", "ec2", "DescribeReplaceRootVolumeTasks",
                {"Filters": [{"Name": "instance-id", "Values": [TARGET_ID]}]},
                pick={"all": "ReplaceRootVolumeTasks[*]"}),
            Set("mine", 0),
            Set("live", None),
            *each("task", Var("vars.tasks.all"), _mine_and_live),
            If(((Exists(Var("vars.live")), (
                Set("task_id", Var("vars.live.ReplaceRootVolumeTaskId")),
                *tag("previous", Var("vars.live"), PREVIOUS_TAG))),),
               orelse=_create(params)),
            Await("task", "replace-root-task", task_id, until=Eq(it.TaskState, "succeeded"),
                  fail=((Exists(it, False), "replace-root-task is missing"),
                        (In(it.TaskState, "failed", "failed-detached"),
                         Fmt("replace-root-task is ", it.TaskState))),
                  timeout=params["timeout"],
                  what=Fmt("replace-root-task ", task_id, " succeeded")),
            *flows.read_instance("after", TARGET_ID),
            *_root("new_root", after),
            Done({"task_id": task_id, "volume_id": Var("vars.new_root_volume"),
                  "previous_volume_id": Var("vars.previous")}))


def _root(into: str, instance: Var) -> Seq:
    """``vars.<into>_volume``: the volume at the instance's root device (None: none)."""
    return (*flows.root_mapping(into, instance),
            Set(f"{into}_volume", Var(f"vars.{into}").Ebs.VolumeId))


def _mine_and_live(task: Var) -> Seq:
    """Count ``task`` in ``vars.mine`` if this step made it on this target in this run
    (its tags say so); ``vars.live`` is it if it is also pending, in progress or done.
    AWS takes one task at a time per instance and a step only makes one when none of
    its own is live, so at most one is."""
    run, step = Var("vars.task_run"), Var("vars.task_step")
    this_step = AnyOf(Same(step, Var("run.step")),
                      All(Exists(Var("run.step"), False), Exists(step, False)))
    return (*tag("task_run", task, "remediate:run-id"),
            *tag("task_step", task, "remediate:step"),
            If(((All(Same(run, Var("run.id")), this_step), (
                Set("mine", Plus(Var("vars.mine"))),
                If(((In(task.TaskState, *sorted(LIVE_TASK_STATES)), (Set("live", task),)),)))),)))


def _create(params: Mapping[str, Any]) -> Seq:
    """CreateReplaceRootVolumeTask, tagged with what finds it again; the replaced root is
    the volume at the root device now."""
    state, step = Var("vars.instance.State.Name"), Var("run.step")
    # The same step on the same target sends the same token; a retry after a failed task
    # sends a new one (AWS would otherwise hand back the failed task).
    token = Sha256(Fmt(Var("run.id"), "/", Var("target.account"), "/", Var("target.region"),
                       "/", TARGET_ID, "/", Var("vars.step_text"), "/", Var("vars.mine")))

    def call(tags: list[dict[str, Expr]]) -> Send:
        return Send("ec2", "CreateReplaceRootVolumeTask", {
            "InstanceId": TARGET_ID, **_source(params), "DeleteReplacedRootVolume": False,
            "ClientToken": token,
            "TagSpecifications": [{"ResourceType": "replace-root-volume-task", "Tags": tags}],
        }, into="created", pick={"id": "ReplaceRootVolumeTask.ReplaceRootVolumeTaskId"},
            note=Fmt("replace the root of ", TARGET_ID, " ", _describe_source(params)))

    tags: list[dict[str, Expr]] = [
        {"Key": "remediate:run-id", "Value": Var("run.id")},
        {"Key": "remediate:target", "Value": TARGET_ID},
        {"Key": PREVIOUS_TAG, "Value": Var("vars.previous_tag")}]
    return (If(((Not(Eq(state, "running")), (Fail(Fmt(
                TARGET_ID, " is ", state, ": root-volume replacement needs a running instance; "
                "start it first (ec2.start)")),)),)),
            *_root("root", Var("vars.instance")),
            Set("previous", Var("vars.root_volume")),
            If(((Exists(Var("vars.previous")), (Set("previous_tag", Var("vars.previous")),)),),
               orelse=(Set("previous_tag", ""),)),
            If(((Exists(step), (Set("step_text", step),
                                call([*tags, {"Key": "remediate:step", "Value": step}]))),),
               orelse=(Set("step_text", ""), call(tags))),
            Set("task_id", Var("vars.created.id")))
