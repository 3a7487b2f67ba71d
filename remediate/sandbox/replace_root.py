"""CreateReplaceRootVolumeTask / DescribeReplaceRootVolumeTasks (moto lacks both).

Follows AWS's documented behaviour: the instance must be running; the task goes
``pending`` -> ``in-progress`` (the instance reboots: status ``initializing``)
-> ``succeeded``. The new root volume is created from the given snapshot (it
inherits the snapshot's channel-file state) or, for launch state or an AMI,
from the clean image. The replaced root volume stays, detached, unless
``DeleteReplacedRootVolume``. Instance-store data, ENIs and IAM are untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.models.elastic_block_store import EBSBackend
from moto.ec2.responses import EC2Response
from moto.moto_api._internal import mock_random

from remediate.sandbox import ec2_rules, errors
from remediate.sandbox.ec2_instances import begin_boot
from remediate.sandbox.patcher import Patcher
from remediate.sandbox.state import World, current


@dataclass
class ReplaceRootTask:
    """One task, with AWS's ``ReplaceRootVolumeTask`` field names."""

    ReplaceRootVolumeTaskId: str
    InstanceId: str
    TaskState: str
    StartTime: datetime
    SnapshotId: str | None = None
    ImageId: str | None = None
    VolumeId: str | None = None
    DeleteReplacedRootVolume: bool = False
    CompleteTime: datetime | None = None
    Tags: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


def _tasks(backend: Any) -> dict[str, ReplaceRootTask]:
    tasks: dict[str, ReplaceRootTask] = backend.__dict__.setdefault("_sandbox_rrv_tasks", {})
    return tasks


def _swap_root(world: World, backend: Any, instance: Any, task: ReplaceRootTask) -> None:
    mapping = ec2_rules.root_mapping(instance)
    device = instance.root_device_name
    with world.moto_internal():
        old = backend.get_volume(mapping.volume_id) if mapping is not None else None
        if old is not None:
            EBSBackend.detach_volume(backend, old.id, instance.id, device)
        if task.VolumeId:  # an existing, available volume becomes the root (AWS 2025+)
            new = backend.get_volume(task.VolumeId)
        else:
            new = backend.create_volume(
                size=old.size if old is not None else 30,
                zone_name=instance.placement.zone,
                snapshot_id=task.SnapshotId,
                encrypted=bool(old.encrypted) if old is not None else False,
                kms_key_id=old.kms_key_id if old is not None else None,
                volume_type=old.volume_type if old is not None else "gp3",
            )
        delete_on_termination = bool(mapping.delete_on_termination) if mapping else True
        backend.attach_volume(new.id, instance.id, device, delete_on_termination)
        if old is not None and task.DeleteReplacedRootVolume:
            backend.delete_volume(old.id)


def _advance(world: World, backend: Any, instance: Any, task: ReplaceRootTask) -> None:
    facts = world.facts(instance.id)

    def in_progress(at: float) -> None:
        if instance.state != "running":
            task.TaskState, task.CompleteTime = "failed", world.clock.wall()
            facts.replacing_root = False
            return
        task.TaskState = "in-progress"
        facts.status = "initializing"
        world.timeline.cancel(("boot", instance.id))
        world.timeline.schedule(key, at + world.durations.replace_root, succeeded)

    def succeeded(at: float) -> None:
        _swap_root(world, backend, instance, task)
        task.TaskState, task.CompleteTime = "succeeded", world.clock.wall()
        facts.replacing_root = False
        begin_boot(world, instance, at, world.durations.draw("instance_boot", instance.id))

    key = ("replace-root", task.ReplaceRootVolumeTaskId)
    world.timeline.schedule(key, world.now() + world.durations.replace_root_pending, in_progress)


def install(patcher: Patcher) -> None:
    def create_replace_root_volume_task(self: Any) -> ActionResult:
        world = current()
        backend = self.ec2_backend
        instance = backend.get_instance(self._get_param("InstanceId"))
        snapshot_id = self._get_param("SnapshotId")
        if snapshot_id:
            backend.get_snapshot(snapshot_id)
        self.error_on_dryrun()
        if instance.state != "running":
            raise errors.replace_root_not_running(instance.id)
        facts = world.facts(instance.id)
        if facts.replacing_root:
            raise errors.replace_root_in_progress(instance.id)
        tags = self._parse_tag_specification().get("replace-root-volume-task", {})
        task = ReplaceRootTask(
            ReplaceRootVolumeTaskId=f"replacevol-{mock_random.get_random_hex(17)}",
            InstanceId=instance.id,
            TaskState="pending",
            StartTime=world.clock.wall(),
            SnapshotId=snapshot_id,
            ImageId=self._get_param("ImageId"),
            VolumeId=self._get_param("VolumeId"),
            DeleteReplacedRootVolume=bool(self._get_bool_param("DeleteReplacedRootVolume", False)),
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )
        _tasks(backend)[task.ReplaceRootVolumeTaskId] = task
        facts.replacing_root = True
        _advance(world, backend, instance, task)
        return ActionResult({"ReplaceRootVolumeTask": task.as_dict()})

    def describe_replace_root_volume_tasks(self: Any) -> ActionResult:
        wanted_ids = set(self._get_param("ReplaceRootVolumeTaskIds", []))
        filters = self._filters_from_querystring()
        wanted_instances = set(filters.get("instance-id", []))
        tasks = [
            task.as_dict()
            for task in _tasks(self.ec2_backend).values()
            if (not wanted_ids or task.ReplaceRootVolumeTaskId in wanted_ids)
            and (not wanted_instances or task.InstanceId in wanted_instances)
        ]
        return ActionResult({"ReplaceRootVolumeTasks": tasks})

    patcher.set(EC2Response, "create_replace_root_volume_task", create_replace_root_volume_task)
    patcher.set(
        EC2Response, "describe_replace_root_volume_tasks", describe_replace_root_volume_tasks
    )
