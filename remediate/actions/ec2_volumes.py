"""Root-volume actions of the volume swap: snapshot, detach, reattach, restore settings.

Losing a root volume (left detached, or on a rescue instance, after a crash) is
the worst thing this tool can do, so every action here reconciles: it reads where
the volume really is and finishes the job from there. ``ec2.reattach_root`` and
``ec2.restore_root_settings`` are what rollbacks run, so they accept any
intermediate state: volume detaching, attached to a rescue instance, instance
still stopping. Before detaching, ``ec2.detach_root`` tags the volume with whose
root it is, so even a run whose journal is lost can find it again.

Nothing here deletes a volume or a snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from remediate.actions.contract import Action, Plan, StepContext, calls
from remediate.actions.ec2_inspect import (
    ROOT_DEVICE_TAG,
    ROOT_DOT_TAG,
    ROOT_OF_TAG,
    Record,
    Steps,
    attachment,
    aws,
    device_mapping,
    existing,
    iam,
    instance_state,
    planned,
    tag_map,
    tagged_root_volume,
)
from remediate.actions.ec2_power import ensure_running, timeout_field, wait_instance
from remediate.actions.lost_replies import ATTACH_CONFLICTS, DETACH_CONFLICTS, look_again, send
from remediate.actions.registry import register
from remediate.actions.requests import ActionRun, Call, StepFailed, Wait, observe, wait_state
from remediate.actions.rescue_launch import RUN_TAG
from remediate.actions.rescue_permissions import DETACH_FROM_RESCUE
from remediate.actions.scoped import Scoped, ec2_arn, only
from remediate.actions.target_permissions import (
    ATTACH_TO_TARGETS,
    BACKUP_TAG,
    DELETE_ON_TERMINATION,
    DETACH_FROM_TARGETS,
    SNAPSHOT_BACKUP,
    START,
)
from remediate.language.schema import Bool, Field, Str
from remediate.language.schema import Record as Schema

if TYPE_CHECKING:
    from remediate.export.fragment import AslStep, Fragment

VOLUME_ID = Str(pattern=r"vol-[0-9a-f]{8,17}", pattern_name="a volume id (vol-...)",
                templated=True)
DEVICE = Str(pattern=r"/dev/[a-z0-9]+|xvd[a-z]+[0-9]*", pattern_name="a device name like /dev/sda1",
             templated=True)
# The tags a root volume gets before it is detached, and the only ones the policy lets
# the tool put on an existing resource (tagging freely could mark any instance
# remediate:role=rescue, which the rescue grants trust).
ROOT_VOLUME_TAGS = (ROOT_OF_TAG, ROOT_DEVICE_TAG, ROOT_DOT_TAG, RUN_TAG)
# A volume whose attachment is settling is waited for; these states are final.
VOLUME_LOST = ("missing", "deleting", "deleted", "error")


def _root_fields(what: str) -> dict[str, Field]:
    return {
        "volume_id": Field(VOLUME_ID, description=(
            f"the volume to {what}; default: the root volume found by ec2.inspect")),
        "device": Field(DEVICE, description=(
            "the instance's root device name; default: the one found by ec2.inspect")),
    }


def root_identity(ctx: StepContext, params: Mapping[str, Any]) -> Steps:
    """(volume id, root device name): from params, else inspection facts, else AWS.

    AWS means the volume now at the instance's root device or, when nothing is
    there, the volume ec2.detach_root tagged as this instance's root.
    """
    iid = ctx.target.id
    volume_id = params.get("volume_id") or ctx.facts.get("root_volume_id")
    device = params.get("device") or ctx.facts.get("root_device_name")
    if volume_id and device:
        return str(volume_id), str(device)
    instance = yield from existing("instance", iid, "instance")
    device = device or instance.get("RootDeviceName")
    if not volume_id:
        mapping = device_mapping(instance, device)
        volume_id = mapping.get("VolumeId") if mapping else None
    if not volume_id:
        tagged = yield from tagged_root_volume(iid)
        if tagged is None:
            raise StepFailed(f"{iid} has nothing at its root device {device} and no volume is "
                             f"tagged {ROOT_OF_TAG}={iid}; say which volume with volume_id")
        volume_id = tagged["VolumeId"]
        device = tag_map(tagged).get(ROOT_DEVICE_TAG, device)
    if not device:
        raise StepFailed(f"{iid} reports no root device name; say it with device")
    return str(volume_id), str(device)


def attached_to(instance_id: str, device: str) -> Callable[[Record | None], bool]:
    def check(volume: Record | None) -> bool:
        att = attachment(volume or {})
        return att is not None and att.get("InstanceId") == instance_id and (
            att.get("Device") == device and att.get("State") == "attached")

    return check


def wait_attached(volume_id: str, instance_id: str, device: str, timeout: float) -> Wait:
    def failed(volume: Record | None) -> str | None:
        if volume is None:
            return "the volume no longer exists"
        att = attachment(volume)
        if volume.get("State") == "available" or (
                att is not None and att.get("InstanceId") != instance_id):
            return f"the volume went {volume.get('State')} instead of attaching to {instance_id}"
        return None

    return Wait("volume", volume_id, until=attached_to(instance_id, device), failed=failed,
                timeout=timeout, what=f"{volume_id} attached to {instance_id} at {device}")


def wait_available(volume_id: str, timeout: float) -> Wait:
    return wait_state("volume", volume_id, "available", fail_on=VOLUME_LOST, timeout=timeout)


def _settled(volume_id: str, timeout: float) -> Wait:
    """Wait out an attach or detach in flight: AWS refuses to act on a volume mid-change."""
    def done(volume: Record | None) -> bool:
        att = attachment(volume or {})
        return att is None or att.get("State") not in {"attaching", "detaching"}

    return Wait("volume", volume_id, until=done, timeout=timeout,
                what=f"{volume_id} attach/detach finished")


def detach(ctx: StepContext, volume: Record, timeout: float) -> Steps:
    """Detach a volume from whatever holds it and wait until it is available."""
    volume_id = volume["VolumeId"]
    att = attachment(volume)
    if att is not None and att.get("State") != "detaching":
        yield from send(ctx, Call("ec2", "DetachVolume", {
            "VolumeId": volume_id, "InstanceId": att["InstanceId"], "Device": att["Device"]},
            note=f"detach {volume_id} from {att['InstanceId']} {att['Device']}"), volume_id,
            DETACH_CONFLICTS)
    return (yield wait_available(volume_id, timeout))


def _stopped_for_root_detach(instance_id: str, timeout: float) -> Steps:
    instance = yield from existing("instance", instance_id, "instance")
    state = instance_state(instance)
    if state == "stopping":
        instance = yield wait_instance(instance_id, "stopped", timeout)
    elif state != "stopped":
        raise StepFailed(f"{instance_id} is {state}: AWS detaches a root volume only from a "
                         "stopped instance; stop it first (ec2.stop)")
    return instance


@register
class SnapshotRoot(Action):
    """Back up the root volume before anything touches it."""

    name = "ec2.snapshot_root"
    summary = "snapshot the root volume (tagged backup), reusing this run's snapshot on re-run"
    params = Schema(fields={
        "volume_id": Field(VOLUME_ID, description=(
            "the volume to snapshot; default: the root volume found by ec2.inspect")),
        "wait": Field(Bool(), default=True, description=(
            "wait until the snapshot is completed; false: go on once it has started (a "
            "snapshot is point-in-time from its start)")),
        "timeout": timeout_field("2h", "how long the snapshot may take to complete"),
    })
    outputs = {"snapshot_id": "the backup snapshot", "volume_id": "the volume it is of"}
    permissions = iam("ec2:DescribeInstances", "ec2:DescribeSnapshots", "ec2:CreateSnapshot",
                      "ec2:CreateTags")
    scoped_permissions = SNAPSHOT_BACKUP
    mutating = True
    verify = "the snapshot reaches 'completed'"

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        volume = params.get("volume_id") or ctx.facts.get("root_volume_id")
        # The permission probe sends the real call's tags: the policy requires them.
        probe = self.request(ctx, str(volume)) if volume else None
        snapshot = calls("ec2:CreateSnapshot", note=f"snapshot {volume or 'the root volume'}",
                         probe=probe)
        return Plan(calls=(*planned("ec2:DescribeSnapshots"), *snapshot),
                    note="reuses this run's backup snapshot if one exists")

    @staticmethod
    def tags(ctx: StepContext) -> dict[str, str]:
        """What the backup is tagged with: whose, which run and step, that it is a backup."""
        tags = {"remediate:run-id": ctx.run_id, "remediate:target": ctx.target.id,
                BACKUP_TAG[0]: BACKUP_TAG[1]}
        if ctx.step_id:
            tags["remediate:step"] = ctx.step_id
        return tags

    def request(self, ctx: StepContext, volume_id: str) -> dict[str, Any]:
        """The CreateSnapshot request backing up ``volume_id``."""
        iid = ctx.target.id
        return {
            "VolumeId": volume_id,
            "Description": f"remediate run {ctx.run_id}: backup of {iid} root {volume_id}",
            "TagSpecifications": [{"ResourceType": "snapshot", "Tags": [
                {"Key": k, "Value": v}
                for k, v in {**self.tags(ctx), "Name": f"{iid} root backup"}.items()]}],
        }

    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        volume_id, _device = yield from root_identity(ctx, params)
        tags = self.tags(ctx)
        filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]
        filters.append({"Name": "volume-id", "Values": [volume_id]})

        def backups() -> Steps:
            found = yield from aws(Call("ec2", "DescribeSnapshots", {
                "OwnerIds": ["self"], "Filters": filters}), f"backups of {volume_id}")
            return list(found.get("Snapshots") or [])

        snapshots = yield from backups()
        if not snapshots and ctx.reply_lost("CreateSnapshot"):
            # A CreateSnapshot of this step lost its reply: its snapshot (tagged on create)
            # may exist and not be listed yet. Never a second backup for a slow listing.
            snapshots = yield from look_again(backups)
        usable = [s for s in snapshots if s.get("State") != "error"]
        if usable:
            snapshot_id = max(usable, key=lambda s: str(s.get("StartTime", "")))["SnapshotId"]
        else:
            created = yield from aws(Call("ec2", "CreateSnapshot",
                                          self.request(ctx, volume_id),
                                          note=f"snapshot {volume_id}"), volume_id)
            snapshot_id = created["SnapshotId"]
        if params["wait"]:
            yield wait_state("snapshot", snapshot_id, "completed", fail_on=("error", "missing"),
                             timeout=params["timeout"])
        return {"snapshot_id": snapshot_id, "volume_id": volume_id}

    def asl(self, step: AslStep) -> Fragment:
        from remediate.export.fragments import ec2_volume

        return ec2_volume.snapshot_root(step)


@register
class DetachRoot(Action):
    """Take the root volume off the stopped instance so a rescue instance can repair it."""

    name = "ec2.detach_root"
    summary = "detach the root volume from the stopped instance and wait until it is available"
    params = Schema(fields={**_root_fields("detach"), "timeout": timeout_field("5m")})
    outputs = {"volume_id": "the root volume", "device": "the root device name it came from",
               "attached_to": "the instance it is attached to now (a rescue instance), or None"}
    permissions = iam("ec2:DescribeInstances", "ec2:DescribeVolumes", "ec2:CreateTags",
                      "ec2:DetachVolume")
    scoped_permissions = (Scoped("ec2:CreateTags", (ec2_arn("volume"),),
                                 (only("aws:TagKeys", *ROOT_VOLUME_TAGS),)),
                          *DETACH_FROM_TARGETS)
    mutating = True
    start_states = frozenset({"stopping", "stopped"})
    risks = frozenset({"marketplace-product-code", "kms-key-unusable", "spot-persistent"})
    verify = "the volume is 'available' (or already on a rescue instance)"
    undo = "ec2.reattach_root"

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        volume = params.get("volume_id") or ctx.facts.get("root_volume_id")
        device = params.get("device") or ctx.facts.get("root_device_name")
        return Plan(calls=planned("ec2:CreateTags", "ec2:DetachVolume",
                                  note=f"detach {volume} from {device}"))

    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        iid = ctx.target.id
        volume_id, device = yield from root_identity(ctx, params)
        volume = yield from existing("volume", volume_id, "root volume")
        att = attachment(volume)
        if att is not None and att.get("State") in {"attaching", "detaching"}:
            volume = yield _settled(volume_id, params["timeout"])
            att = attachment(volume or {})
        if att is not None and att.get("InstanceId") != iid:
            # Already moved on (to a rescue instance): the target's part is done.
            return {"volume_id": volume_id, "device": device, "attached_to": att["InstanceId"]}
        if att is not None:
            instance = yield from _stopped_for_root_detach(iid, params["timeout"])
            mapping = device_mapping(instance, att.get("Device")) or {}
            dot = str(bool(mapping.get("DeleteOnTermination"))).lower()
            yield from aws(Call("ec2", "CreateTags", {"Resources": [volume_id], "Tags": [
                {"Key": ROOT_OF_TAG, "Value": iid},
                {"Key": ROOT_DEVICE_TAG, "Value": device},
                {"Key": ROOT_DOT_TAG, "Value": dot},
                {"Key": "remediate:run-id", "Value": ctx.run_id},
            ]}, note=f"mark {volume_id} as root of {iid}"), volume_id)
            volume = yield from detach(ctx, volume, params["timeout"])
        elif volume.get("State") != "available":
            yield wait_available(volume_id, params["timeout"])
        return {"volume_id": volume_id, "device": device, "attached_to": None}

    def asl(self, step: AslStep) -> Fragment:
        from remediate.export.fragments import ec2_volume

        return ec2_volume.detach_root(step)


@register
class ReattachRoot(Action):
    """Put the original root volume back at the original root device name.

    Works from any state the swap can leave: volume on the rescue instance,
    detaching, available, already back. What it refuses is to displace a different
    volume that sits at the root device now.
    """

    name = "ec2.reattach_root"
    summary = "attach the original root volume back at its root device (detaching it first)"
    params = Schema(fields={**_root_fields("put back"), "timeout": timeout_field("5m")})
    outputs = {"volume_id": "the root volume", "device": "the device it is attached at"}
    permissions = iam("ec2:DescribeInstances", "ec2:DescribeVolumes", "ec2:DetachVolume",
                      "ec2:AttachVolume")
    # Back from a rescue instance (or from another device of the target) to the target.
    scoped_permissions = (DETACH_FROM_RESCUE, *DETACH_FROM_TARGETS, *ATTACH_TO_TARGETS)
    mutating = True
    start_states = frozenset({"stopping", "stopped"})
    verify = "the volume is attached to the instance at the root device"
    undo = "ec2.detach_root"

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        volume = params.get("volume_id") or ctx.facts.get("root_volume_id")
        device = params.get("device") or ctx.facts.get("root_device_name")
        return Plan(calls=planned("ec2:DetachVolume", "ec2:AttachVolume",
                                  note=f"attach {volume} at {device}"),
                    note="detaches from the rescue instance first if needed; "
                         "skips what is already done")

    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        iid = ctx.target.id
        timeout = params["timeout"]
        volume_id, device = yield from root_identity(ctx, params)
        volume = yield from existing("volume", volume_id, "root volume")
        if attachment(volume) is not None:
            volume = yield _settled(volume_id, timeout)
            if volume is None:
                raise StepFailed(f"root volume {volume_id} disappeared while settling")
        if attached_to(iid, device)(volume):
            return {"volume_id": volume_id, "device": device}
        if attachment(volume) is not None:
            # On the rescue instance (or at the wrong device): take it off first.
            volume = yield from detach(ctx, volume, timeout)
        instance = yield from existing("instance", iid, "instance")
        _check_can_attach(volume, instance, device)
        if instance_state(instance) == "stopping":
            yield wait_instance(iid, "stopped", timeout)
        yield from send(ctx, Call("ec2", "AttachVolume", {
            "VolumeId": volume_id, "InstanceId": iid, "Device": device},
            note=f"attach {volume_id} to {iid} at {device}"), volume_id, ATTACH_CONFLICTS)
        yield wait_attached(volume_id, iid, device, timeout)
        return {"volume_id": volume_id, "device": device}

    def asl(self, step: AslStep) -> Fragment:
        from remediate.export.fragments import ec2_volume

        return ec2_volume.reattach_root(step)


def _check_can_attach(volume: Record, instance: Record, device: str) -> None:
    """Refuse, before calling AWS, what AWS would refuse or what would lose data."""
    iid, volume_id = instance["InstanceId"], volume.get("VolumeId")
    zone = (instance.get("Placement") or {}).get("AvailabilityZone")
    if volume.get("AvailabilityZone") != zone:
        raise StepFailed(f"{volume_id} is in {volume.get('AvailabilityZone')} but {iid} is in "
                         f"{zone}; a volume attaches only within its Availability Zone")
    occupant = device_mapping(instance, device)
    if occupant is not None and occupant.get("VolumeId") != volume_id:
        raise StepFailed(f"{device} of {iid} holds {occupant.get('VolumeId')}, not "
                         f"{volume_id}; refusing to displace it (detach it yourself if "
                         f"{volume_id} is the one to boot)")
    if instance_state(instance) in {"shutting-down", "terminated"}:
        raise StepFailed(f"{iid} is {instance_state(instance)}; {volume_id} stays available")


@register
class RestoreRootSettings(Action):
    """Put back what the swap changed: DeleteOnTermination, and start it if it was running.

    Attaching a volume always sets DeleteOnTermination to false, so a root volume
    that was moved loses the flag it had at launch.
    """

    name = "ec2.restore_root_settings"
    summary = "restore the root volume's DeleteOnTermination and start the instance if it ran"
    params = Schema(fields={
        "device": Field(DEVICE, description=(
            "the root device name; default: the one found by ec2.inspect")),
        "delete_on_termination": Field(Bool(templated=True), description=(
            "the flag to set; default: what ec2.inspect found (unchanged if unknown)")),
        "start": Field(Bool(templated=True), description=(
            "start the instance and wait until it runs; default: if it was running or "
            "pending when inspected")),
        "timeout": timeout_field("10m"),
    })
    outputs = {"delete_on_termination": "the flag now set on the root device",
               "state": "the instance's state at the end of the step"}
    permissions = iam("ec2:DescribeInstances", "ec2:DescribeVolumes",
                      "ec2:ModifyInstanceAttribute", "ec2:StartInstances")
    scoped_permissions = (*DELETE_ON_TERMINATION, START)
    mutating = True
    risks = frozenset({"kms-key-unusable"})
    verify = "the root mapping's DeleteOnTermination matches; the instance runs if asked"

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        apis = ["ec2:ModifyInstanceAttribute"]
        if self._start(ctx, params):
            apis.append("ec2:StartInstances")
        return Plan(calls=planned(*apis))

    @staticmethod
    def _start(ctx: StepContext, params: Mapping[str, Any]) -> bool:
        start = params.get("start")
        return ctx.facts.get("state") in {"running", "pending"} if start is None else bool(start)

    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        iid = ctx.target.id
        instance = yield from existing("instance", iid, "instance")
        device = (params.get("device") or ctx.facts.get("root_device_name")
                  or instance.get("RootDeviceName"))
        mapping = device_mapping(instance, device)
        if mapping is None:
            raise StepFailed(f"nothing is attached at {device} of {iid}; put the root volume "
                             "back first (ec2.reattach_root)")
        if mapping.get("Status") == "attaching":
            yield wait_attached(str(mapping.get("VolumeId")), iid, str(device), params["timeout"])
        wanted = params.get("delete_on_termination")
        if wanted is None:
            wanted = ctx.facts.get("root_delete_on_termination")
        current = bool(mapping.get("DeleteOnTermination"))
        if wanted is not None and bool(wanted) != current:
            yield from aws(Call("ec2", "ModifyInstanceAttribute", {
                "InstanceId": iid, "BlockDeviceMappings": [
                    {"DeviceName": device, "Ebs": {"DeleteOnTermination": bool(wanted)}}]},
                note=f"DeleteOnTermination={bool(wanted)} on {iid} {device}"), iid)
            current = bool(wanted)
        if self._start(ctx, params):
            yield from ensure_running(iid, params["timeout"])
            state = "running"
        else:
            state = instance_state((yield observe("instance", iid)) or {})
        return {"delete_on_termination": current, "state": state}

    def asl(self, step: AslStep) -> Fragment:
        from remediate.export.fragments import ec2_volume

        return ec2_volume.restore_root_settings(step)
