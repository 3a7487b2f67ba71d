"""Fragment of ``ec2.replace_root``: CreateReplaceRootVolumeTask on a running instance.

Differences from the local action: it does not look for a task of its own to
reuse (AWS's DescribeReplaceRootVolumeTasks filters by instance only, and ASL
cannot filter the tasks by tag), so a retried step starts a new task; AWS
refuses a second one while the first is in progress, and a finished first one
leaves nothing to redo. The replaced root is the volume at the root device when
the step starts.
"""

from __future__ import annotations

from typing import Any

from remediate.actions.ec2_replace_root import PREVIOUS_TAG
from remediate.export import asl
from remediate.export.asl import Ref
from remediate.export.fragment import AslStep, Fragment, Poll, merge, poll, read
from remediate.export.fragments.ec2_instance import describe_instance, state_of


def _source(step: AslStep) -> dict[str, Any]:
    for param, field in (("snapshot_id", "SnapshotId"), ("image_id", "ImageId"),
                         ("volume_id", "VolumeId")):
        if step.params.get(param):
            return {field: step.params[param]}
    return {}  # restore_to: launch-state


def _root(step: AslStep, name: str, next_state: str) -> dict[str, Any]:
    """The volume attached at the root device, at ``$.r.<name>_vol.v``."""
    return {
        step.name(name): read(step, name, "ec2", "DescribeVolumes", {"Filters": [
            {"Name": "attachment.instance-id", "Values": [step.target_id]},
            {"Name": "attachment.device", "Values": [step.fact("root_device_name")]}]},
            {"list": Ref("$.Volumes")}, step.name(name, "found")),
        step.name(name, "found"): asl.choice(
            [(asl.present(step.at(name, "list[0]")), step.name(name, "pick"))],
            step.name("no_root")),
        step.name(name, "pick"): asl.pass_state(next_state, parameters={
            "v": Ref(step.at(name, "list[0]"))}, result_path=step.scratch(f"{name}_vol")),
    }


def replace_root(step: AslStep) -> Fragment:
    if step.params.get("delete_replaced_root_volume"):
        raise step.unsupported("remediate never deletes a customer volume: "
                               "delete_replaced_root_volume must be false")
    n = step.name
    state = state_of(step, "instance")
    previous = asl.path(step.at("before_vol", "v", "VolumeId"))
    task_id = asl.path(step.at("task", "id"))
    status = step.at("progress", "t", "TaskState")
    tags = {"remediate:run-id": step.run_id, "remediate:target": step.target_id,
            PREVIOUS_TAG: previous, "remediate:step": step.step_id}
    done = poll(step, Poll(
        "progress", "ec2", "DescribeReplaceRootVolumeTasks",
        {"ReplaceRootVolumeTaskIds": [task_id]}, {"t": Ref("$.ReplaceRootVolumeTasks[0]")},
        asl.equals(status, "succeeded"), step.params["timeout"], "replacement succeeded",
        ((asl.one_of(status, ("failed", "failed-detached")),
          asl.fmt("root volume replacement ", task_id, " of ", step.target_id, " ended ",
                  asl.path(status))),)), n("after"))
    return Fragment(n("instance"), merge(
        describe_instance(step, "instance", n("running")), done,
        _root(step, "before", n("create")), _root(step, "after", n("done")), {
            n("running"): asl.choice([(asl.equals(state, "running"), n("before"))],
                                     n("not_running")),
            n("not_running"): step.failure(asl.fmt(
                step.target_id, " is ", asl.path(state), ": root-volume replacement needs a "
                "running instance; start it first (ec2.start)")),
            n("no_root"): step.failure(asl.fmt(step.target_id, " has nothing attached at its "
                                               "root device")),
            n("create"): asl.task("ec2", "CreateReplaceRootVolumeTask", {
                "InstanceId": step.target_id, **_source(step),
                "DeleteReplacedRootVolume": False,
                "TagSpecifications": [{"ResourceType": "replace-root-volume-task", "Tags": [
                    {"Key": k, "Value": v} for k, v in tags.items()]}],
            }, done.start, select={"id": Ref("$.ReplaceRootVolumeTask.ReplaceRootVolumeTaskId")},
                result_path=step.scratch("task")),
            n("done"): step.done({"task_id": task_id,
                                  "volume_id": asl.path(step.at("after_vol", "v", "VolumeId")),
                                  "previous_volume_id": previous}),
        }))
