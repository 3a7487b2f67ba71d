"""Root-volume actions of the volume swap: snapshot, detach, reattach, restore settings.

Losing a root volume (left detached, or on a rescue instance, after a crash) is
the worst thing this tool can do, so every action here reconciles: it reads where
the volume really is and finishes the job from there. ``ec2.reattach_root`` and
``ec2.restore_root_settings`` are what rollbacks run, so they accept any
intermediate state: volume detaching, attached to a rescue instance, instance
still stopping. Before detaching, ``ec2.detach_root`` tags the volume with whose
root it is, so even a run whose journal is lost can find it again.

Each is a program (:mod:`remediate.actions.program`), run by the local engine and
compiled for Step Functions from the same definition; the pieces they share are in
:mod:`remediate.actions.ebs_flows` and :mod:`remediate.actions.instance_flows`, what
they do after a lost reply in :mod:`remediate.actions.lost_replies`.

Nothing here deletes a volume or a snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from remediate.actions import ebs_flows as ebs
from remediate.actions import instance_flows as flows
from remediate.actions.contract import Plan, StepContext, calls
from remediate.actions.ec2_inspect import (
    ROOT_DEVICE_TAG,
    ROOT_DOT_TAG,
    ROOT_OF_TAG,
    iam,
    planned,
)
from remediate.actions.ec2_power import timeout_field
from remediate.actions.interpret import evaluate
from remediate.actions.lost_replies import find_made
from remediate.actions.program import (
    TARGET_ID,
    All,
    AnyOf,
    AtLeast,
    Count,
    Done,
    Eq,
    Exists,
    Expr,
    Fail,
    Find,
    Fmt,
    Get,
    If,
    In,
    Not,
    Program,
    Read,
    Retried,
    Same,
    Send,
    Seq,
    Set,
    Var,
    program,
)
from remediate.actions.programmed import ProgramAction
from remediate.actions.registry import register
from remediate.actions.rescue_launch import RUN_TAG
from remediate.actions.rescue_permissions import DETACH_FROM_RESCUE
from remediate.actions.scoped import Scoped, ec2_arn, only
from remediate.actions.target_permissions import (
    ATTACH_TO_TARGETS,
    BACKUP_TAG,
    DELETE_ON_TERMINATION,
    DETACH_FROM_TARGETS,
    RELEASE,
    SNAPSHOT_BACKUP,
    START,
)
from remediate.language.schema import Bool, Field, Str
from remediate.language.schema import Record as Schema

VOLUME_ID = Str(pattern=r"vol-[0-9a-f]{8,17}", pattern_name="a volume id (vol-...)",
                templated=True)
SNAPSHOT_ID = Str(pattern=r"snap-[0-9a-f]{8,17}", pattern_name="a snapshot id", templated=True)
DEVICE = Str(pattern=r"/dev/[a-z0-9]+|xvd[a-z]+[0-9]*", pattern_name="a device name like /dev/sda1",
             templated=True)
# The tags a root volume gets before it is detached, and the only ones the policy lets
# the tool put on an existing resource (tagging freely could mark any instance
# remediate:role=rescue, which the rescue grants trust).
ROOT_VOLUME_TAGS = (ROOT_OF_TAG, ROOT_DEVICE_TAG, ROOT_DOT_TAG, RUN_TAG)
RUN_ID: Final = Var("run.id")
STEP_ID: Final = Var("run.step")
VOLUME: Final = Var("vars.volume_id")
ROOT_DEVICE: Final = Var("vars.device")


def _root_fields(what: str) -> dict[str, Field]:
    return {
        "volume_id": Field(VOLUME_ID, description=(
            f"the volume to {what}; default: the root volume found by ec2.inspect")),
        "device": Field(DEVICE, description=(
            "the instance's root device name; default: the one found by ec2.inspect")),
    }


def _given(params: Mapping[str, Any], name: str, fact: str) -> Set:
    """``vars.<name>``: the param if the step sets it, else the inspection fact."""
    if params.get(name) not in (None, ""):
        return Set(name, Var(f"params.{name}"))
    return Set(name, Var(f"target.{fact}"))


def root_identity(params: Mapping[str, Any]) -> Seq:
    """``vars.volume_id`` and ``vars.device``: from params, else inspection facts, else AWS.

    AWS means the volume now at the instance's root device or, when nothing is
    there, the volume ec2.detach_root tagged as this instance's root.
    """
    iid, instance = TARGET_ID, Var("vars.root_instance")
    tagged, mapping = Var("vars.tagged"), Var("vars.root_mapping")
    count, volume, device_tag = Var("vars.tagged_count"), Var("vars.tagged_volume"), Var(
        "vars.tagged_device")
    from_tags: Seq = (
        Get("tagged", "ec2", "DescribeVolumes", {"Filters": [
            {"Name": f"tag:{ROOT_OF_TAG}", "Values": [iid]}]},
            pick={"list": "Volumes", "ids": "Volumes[*].VolumeId"}),
        Set("tagged_count", Count(tagged.list)),
        If(((AtLeast(count, 2), (Fail(Fmt(
            iid, " has no root volume attached and ", count, f" volumes are tagged {ROOT_OF_TAG}=",
            iid, " (", tagged.ids, "); say which one with volume_id")),)),
            (Exists(tagged.list.at(0), False), (Fail(Fmt(
                iid, " has nothing at its root device ", ROOT_DEVICE,
                f" and no volume is tagged {ROOT_OF_TAG}=", iid,
                "; say which volume with volume_id")),)))),
        Set("tagged_volume", tagged.list.at(0)),
        Set("volume_id", volume.VolumeId),
        Find("tagged_device", volume.Tags, "Key", ROOT_DEVICE_TAG),
        If(((Exists(device_tag.Value), (Set("device", device_tag.Value),)),)))
    from_aws: Seq = (
        *flows.read_instance("root_instance", iid),
        If(((Exists(ROOT_DEVICE, False), (Set("device", instance.RootDeviceName),)),)),
        If(((All(Exists(VOLUME, False), Exists(ROOT_DEVICE)), (
            ebs.device_mapping("root_mapping", instance, ROOT_DEVICE),
            Set("volume_id", mapping.Ebs.VolumeId))),)),
        If(((Exists(VOLUME, False), from_tags),)),
        If(((Exists(ROOT_DEVICE, False), (Fail(Fmt(
            iid, " reports no root device name; say it with device")),)),)))
    return (_given(params, "volume_id", "root_volume_id"),
            _given(params, "device", "root_device_name"),
            If(((Not(All(Exists(VOLUME), Exists(ROOT_DEVICE))), from_aws),)))


def _stopped_for_root_detach(timeout: float) -> Seq:
    """The instance (``vars.instance``) stopped: waited for if stopping, else refused."""
    state = Var("vars.instance").State.Name
    return (*flows.read_instance("instance", TARGET_ID),
            If(((Eq(state, "stopping"),
                 (flows.wait_state("instance", TARGET_ID, "stopped", timeout),)),
                (Not(Eq(state, "stopped")), (Fail(Fmt(
                    TARGET_ID, " is ", state, ": AWS detaches a root volume only from a "
                    "stopped instance; stop it first (ec2.stop)")),)))))


@register
class SnapshotRoot(ProgramAction):
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
    beside_target = True
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
    def tags(step: bool) -> dict[str, Expr]:
        """What the backup is tagged with: whose, which run and step (``step``: the action
        runs as a playbook's step), that it is a backup."""
        tags: dict[str, Expr] = {"remediate:run-id": RUN_ID, "remediate:target": TARGET_ID,
                                 BACKUP_TAG[0]: BACKUP_TAG[1]}
        if step:
            tags["remediate:step"] = STEP_ID
        return tags

    @classmethod
    def create(cls, step: bool) -> dict[str, Expr]:
        """The CreateSnapshot request backing up ``vars.volume_id``."""
        return {
            "VolumeId": VOLUME,
            "Description": Fmt("remediate run ", RUN_ID, ": backup of ", TARGET_ID, " root ",
                               VOLUME),
            "TagSpecifications": [{"ResourceType": "snapshot", "Tags": [
                {"Key": k, "Value": v}
                for k, v in {**cls.tags(step), "Name": Fmt(TARGET_ID, " root backup")}.items()]}],
        }

    def request(self, ctx: StepContext, volume_id: str) -> dict[str, Any]:
        """The CreateSnapshot request backing up ``volume_id`` (the dry run's probe)."""
        scope = {"run": {"id": ctx.run_id, "step": ctx.step_id}, "target": {"id": ctx.target.id},
                 "vars": {"volume_id": volume_id}}
        request: dict[str, Any] = evaluate(self.create(bool(ctx.step_id)), scope)
        return request

    def program(self, params: Mapping[str, Any]) -> Program:
        return program(*root_identity(params),
                       If(((Exists(STEP_ID), self._backup(params, step=True)),),
                          orelse=self._backup(params, step=False)))

    def _backup(self, params: Mapping[str, Any], step: bool) -> Seq:
        """This run's usable backup of the volume if there is one, else a new one."""
        backups, snapshot = Var("vars.backups"), Var("vars.snapshot_id")
        filters: list[Expr] = [{"Name": f"tag:{key}", "Values": [value]}
                               for key, value in self.tags(step).items()]
        filters += [{"Name": "volume-id", "Values": [VOLUME]},
                    {"Name": "status", "Values": ["pending", "completed"]}]
        find = (Get("backups", "ec2", "DescribeSnapshots",
                    {"OwnerIds": ["self"], "Filters": filters}, pick={"list": "Snapshots"}),)
        found = Exists(backups.list.at(0))
        wait: Seq = ()
        if params["wait"]:
            wait = (ebs.state_wait("snapshot", "snapshot", snapshot, "completed",
                                   ebs.SNAPSHOT_LOST, params["timeout"]),)
        create = (Send("ec2", "CreateSnapshot", self.create(step), into="created",
                       pick={"id": "SnapshotId"}, note=Fmt("snapshot ", VOLUME), subject=VOLUME),
                  Set("snapshot_id", Var("vars.created.id")))
        # A CreateSnapshot of this step that lost its reply made a snapshot (tagged on
        # create) that may not be listed yet: never a second backup for a slow listing.
        reuse_or_create = (
            *find_made("CreateSnapshot", find, found),
            If(((found, (Set("backup", backups.list.at(0)),
                         Set("snapshot_id", Var("vars.backup.SnapshotId")))),),
               orelse=create))
        return (
            # Only a step that may have sent CreateSnapshot before (a retry, a reconcile
            # after a lost reply, a resumed run) looks for its backup; a fresh target's
            # first attempt makes it at once (no DescribeSnapshots on the critical path).
            If(((Retried("CreateSnapshot"), reuse_or_create),), orelse=create),
            *wait,
            Done({"snapshot_id": snapshot, "volume_id": VOLUME}))


@register
class DetachRoot(ProgramAction):
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
    risks = frozenset({"marketplace-product-code", "kms-key-unusable", "kms-key-denied",
                       "kms-key-unchecked", "spot-persistent"})
    verify = "the volume is 'available' (or already on a rescue instance)"
    undo = "ec2.reattach_root"

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        volume = params.get("volume_id") or ctx.facts.get("root_volume_id")
        device = params.get("device") or ctx.facts.get("root_device_name")
        return Plan(calls=planned("ec2:CreateTags", "ec2:DetachVolume",
                                  note=f"detach {volume} from {device}"))

    def program(self, params: Mapping[str, Any]) -> Program:
        timeout = params["timeout"]
        volume, att, mapping = Var("vars.volume"), Var("vars.att"), Var("vars.mapping")
        outputs: dict[str, Expr] = {"volume_id": VOLUME, "device": ROOT_DEVICE}
        mark = Send("ec2", "CreateTags", {"Resources": [VOLUME], "Tags": [
            {"Key": ROOT_OF_TAG, "Value": TARGET_ID},
            {"Key": ROOT_DEVICE_TAG, "Value": ROOT_DEVICE},
            {"Key": ROOT_DOT_TAG, "Value": Var("vars.dot")},
            {"Key": "remediate:run-id", "Value": RUN_ID},
        ]}, note=Fmt("mark ", VOLUME, " as root of ", TARGET_ID), subject=VOLUME)
        return program(
            *root_identity(params),
            *ebs.read_volume("volume", VOLUME, "root volume"),
            ebs.attachment("att", volume),
            If(((In(att.State, *ebs.SETTLING), (ebs.settled("volume", VOLUME, timeout),
                                                ebs.attachment("att", volume))),)),
            If(((All(Exists(att), Not(Same(att.InstanceId, TARGET_ID))), (
                # Already moved on (to a rescue instance): the target's part is done.
                Done({**outputs, "attached_to": att.InstanceId}),)),
                (Exists(att), (
                    *_stopped_for_root_detach(timeout),
                    # Say whose root it is (and its flag), in case the run is lost.
                    ebs.device_mapping("mapping", Var("vars.instance"), att.Device),
                    If(((Eq(mapping.Ebs.DeleteOnTermination, True), (Set("dot", "true"),)),),
                       orelse=(Set("dot", "false"),)),
                    mark,
                    *ebs.detach("volume", VOLUME, att, timeout)))),
               orelse=(If(((Not(Eq(volume.State, "available")),
                            (ebs.available("volume", VOLUME, timeout),)),)),)),
            Done({**outputs, "attached_to": None}))


@register
class ReattachRoot(ProgramAction):
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

    def program(self, params: Mapping[str, Any]) -> Program:
        timeout = params["timeout"]
        volume, att = Var("vars.volume"), Var("vars.att")
        state = Var("vars.instance").State.Name
        home = Done({"volume_id": VOLUME, "device": ROOT_DEVICE})
        return program(
            *root_identity(params),
            *ebs.read_volume("volume", VOLUME, "root volume"),
            If(((Exists(volume.Attachments.at(0)), (
                ebs.settled("volume", VOLUME, timeout),
                If(((Exists(volume, False), (Fail(Fmt(
                    "root volume ", VOLUME, " disappeared while settling")),)),)))),)),
            ebs.attachment("att", volume),
            If(((ebs.attached_to(att, TARGET_ID, ROOT_DEVICE), (home,)),)),
            # On the rescue instance (or at the wrong device): take it off first.
            If(((Exists(att), ebs.detach("volume", VOLUME, att, timeout)),)),
            *flows.read_instance("instance", TARGET_ID),
            *_refusals(volume, Var("vars.instance")),
            If(((Eq(state, "stopping"),
                 (flows.wait_state("instance_stopped", TARGET_ID, "stopped", timeout),)),)),
            ebs.attach(VOLUME, TARGET_ID, ROOT_DEVICE),
            ebs.attached("attached", VOLUME, TARGET_ID, ROOT_DEVICE, timeout),
            home)


def _refusals(volume: Var, instance: Var) -> Seq:
    """Refuse, before calling AWS, what AWS would refuse or what would lose data."""
    zone, occupant = instance.Placement.AvailabilityZone, Var("vars.occupant")
    state = instance.State.Name
    return (
        If(((Not(Same(volume.AvailabilityZone, zone)), (Fail(Fmt(
            VOLUME, " is in ", volume.AvailabilityZone, " but ", TARGET_ID, " is in ", zone,
            "; a volume attaches only within its Availability Zone")),)),)),
        ebs.device_mapping("occupant", instance, ROOT_DEVICE),
        If(((All(Exists(occupant), Not(Same(occupant.Ebs.VolumeId, VOLUME))), (Fail(Fmt(
            ROOT_DEVICE, " of ", TARGET_ID, " holds ", occupant.Ebs.VolumeId, ", not ", VOLUME,
            "; refusing to displace it (detach it yourself if ", VOLUME,
            " is the one to boot)")),)),)),
        If(((In(state, *flows.GONE), (Fail(Fmt(
            TARGET_ID, " is ", state, "; ", VOLUME, " stays available")),)),)))


@register
class RestoreRootSettings(ProgramAction):
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
                      "ec2:ModifyInstanceAttribute", "ec2:StartInstances",
                      "ec2:DescribeCapacityReservations", "ec2:ModifyCapacityReservation",
                      "ec2:CancelCapacityReservation")
    scoped_permissions = (*DELETE_ON_TERMINATION, START, *RELEASE)
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

    def program(self, params: Mapping[str, Any]) -> Program:
        timeout = params["timeout"]
        instance, mapping = Var("vars.instance"), Var("vars.mapping")
        wanted, current, observed = Var("vars.wanted"), Var("vars.current"), Var("vars.observed")
        wanted_from = (Set("wanted", Var("params.delete_on_termination"))
                       if params.get("delete_on_termination") is not None
                       else Set("wanted", Var("target.root_delete_on_termination")))
        # Start it if asked; by default if it was running (or pending) when inspected.
        start = (In(Var("target.state"), "running", "pending") if params.get("start") is None
                 else Eq(Var("params.start"), True))
        return program(
            *flows.read_instance("instance", TARGET_ID),
            _given(params, "device", "root_device_name"),
            If(((Exists(ROOT_DEVICE, False), (Set("device", instance.RootDeviceName),)),)),
            ebs.device_mapping("mapping", instance, ROOT_DEVICE),
            If(((Exists(mapping, False), (Fail(Fmt(
                "nothing is attached at ", ROOT_DEVICE, " of ", TARGET_ID,
                "; put the root volume back first (ec2.reattach_root)")),)),)),
            If(((Eq(mapping.Ebs.Status, "attaching"), (ebs.attached(
                "attached", mapping.Ebs.VolumeId, TARGET_ID, ROOT_DEVICE, timeout),)),)),
            wanted_from,
            If(((Eq(mapping.Ebs.DeleteOnTermination, True), (Set("current", True),)),),
               orelse=(Set("current", False),)),
            # Started first, the flag after: StartInstances (its resource bucket binds a
            # fleet, domain.md) waits for no other bucket, and AWS changes
            # DeleteOnTermination on a running instance ("Preserve data when an instance
            # is terminated", docs.aws.amazon.com/AWSEC2/latest/UserGuide/
            # preserving-volumes-on-termination.html). A start that fails leaves the flag
            # false: the volume outlives the instance, the safe side.
            If(((start, (*flows.running("started", TARGET_ID, timeout), Set("state", "running"))),),
               orelse=(Read("observed", "instance", TARGET_ID),
                       If(((Exists(observed), (Set("state", observed.State.Name),)),),
                          orelse=(Set("state", "unknown"),)))),
            # Only when it must change (AttachVolume always sets it false).
            If(((AnyOf(All(Eq(wanted, True), Eq(current, False)),
                       All(Eq(wanted, False), Eq(current, True))), (
                Send("ec2", "ModifyInstanceAttribute", {
                    "InstanceId": TARGET_ID, "BlockDeviceMappings": [
                        {"DeviceName": ROOT_DEVICE, "Ebs": {"DeleteOnTermination": wanted}}]},
                    note=Fmt("DeleteOnTermination=", wanted, " on ", TARGET_ID, " ",
                             ROOT_DEVICE)),
                Set("current", wanted))),)),
            Done({"delete_on_termination": current, "state": Var("vars.state")}))
