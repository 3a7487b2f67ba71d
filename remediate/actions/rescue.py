"""Offline repair through a rescue instance: attach the broken volume, repair, detach.

Each action is a program (:mod:`remediate.actions.program`) that starts by reading the
volume: a volume already on a rescue instance of this run is recognised by its
attachment, so a resumed step picks up where the crash left it. The rescue instances
themselves are the run-wide :class:`~remediate.actions.rescue_pool.RescuePool` locally,
and one per target on Step Functions (:mod:`remediate.actions.rescue_natives`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from remediate.actions import bitlocker_keys, rescue_image
from remediate.actions import rescue_flows as flows
from remediate.actions import rescue_natives as natives
from remediate.actions.contract import Plan, StepContext, calls
from remediate.actions.lost_replies import DETACH_CONFLICTS
from remediate.actions.program import (
    All,
    Done,
    Eq,
    Exists,
    Fail,
    Fmt,
    If,
    Not,
    OnError,
    Program,
    Same,
    Script,
    Send,
    Set,
    Var,
    program,
)
from remediate.actions.programmed import ProgramAction
from remediate.actions.registry import register
from remediate.actions.rescue_flows import ATT, HOLDER, SAME_AMI, VOLUME
from remediate.actions.rescue_launch import SLOTS, config_of, probe_request
from remediate.actions.rescue_permissions import ATTACH, DETACH, REPAIR
from remediate.actions.rescue_pool import RescuePool
from remediate.actions.script_files import (
    SHELL_FIELD,
    script_field,
    script_shell_problems,
    shell_of,
)
from remediate.actions.ssm_flows import INSTANCE_ID_RE, SHELL_DOCUMENTS, judged, run_script
from remediate.language.problems import Problem
from remediate.language.schema import Duration, Field, Int, ListOf, Record, Str

__all__ = ["AttachVolume", "DetachVolume", "Repair", "RescuePool", "config_of"]

DEFAULT_SCRIPT: Final = "scripts/crowdstrike-offline-repair.ps1"
RESCUE: Final = Var("vars.rescue")
DEVICE: Final = Var("vars.device")

VOLUME_ID = Field(
    Str(pattern=r"vol-[0-9a-f]{8,17}", pattern_name="a volume id (vol-...)", templated=True),
    description="the EBS volume; default: the target's root volume (fact root_volume_id)")
READY_TIMEOUT = Field(Duration(minimum=60, maximum=3 * 3600), default=1200.0,
                      description="how long a rescue instance may take to run with its SSM "
                                  "agent Online")


def same_image_error(ctx: StepContext, image_id: str, image: str) -> str | None:
    """Why the rescue AMI ``image_id`` (what ``image``, the step's rescue_image_id, names
    in the target's Region) must not be used for this target (None: it may)."""
    if ctx.facts.get("image_id") != image_id or SAME_AMI in ctx.accepted:
        return None
    return (f"rescue_image_id {rescue_image.shown(image_id, image)} is the AMI "
            f"{ctx.target.id} was launched from: its disk would collide with the rescue "
            "instance's (disk signature) and onlining it can leave it unbootable; use a "
            "different Windows version, or --accept same-ami-rescue")


LAUNCH_FIELDS: Final = {
    "rescue_image_id": Field(
        rescue_image.image_node(templated=True), required=True,
        description="the AMI rescue instances run: a different Windows version than the "
                    "targets' (disk-signature collision), or Linux with ntfs-3g; "
                    "resolve:ssm:PARAMETER is resolved once per account and Region"),
    "instance_type": Field(Str(max_len=64), default="t3.medium",
                           description="rescue instance type (Nitro, so disks are found "
                                       "by volume id)"),
    "subnet_ids": Field(ListOf(item=Str(pattern=r"subnet-[0-9a-f]{8,17}",
                                        pattern_name="a subnet id (subnet-...)")),
                        default=[], description="subnets to launch rescue instances in, "
                        "one per AZ used; default: each AZ's default subnet"),
    "security_group_ids": Field(ListOf(item=Str(pattern=r"sg-[0-9a-f]{8,17}",
                                                pattern_name="a security group id")),
                                default=[], description="security groups for rescue "
                                "instances; default: the subnet VPC's default group"),
    "instance_profile": Field(Str(min_len=0, max_len=2048),
                              description="instance profile (name or ARN) giving rescue "
                                          "instances SSM access (AmazonSSMManagedInstance"
                                          "Core); none or empty: only Default Host "
                                          "Management Configuration can"),
    "max_per_az": Field(Int(minimum=1, maximum=50), default=2,
                        description="at most this many rescue instances per AZ"),
    "volumes_per_instance": Field(Int(minimum=1, maximum=len(SLOTS)), default=len(SLOTS),
                                  description="volumes one rescue instance holds at once "
                                              "(devices xvdf..xvdp)"),
    "ready_timeout": READY_TIMEOUT,
}
"""rescue.attach_volume's parameters saying how rescue instances are launched
(rescue.prepare takes the same)."""


@register
class AttachVolume(ProgramAction):
    name = "rescue.attach_volume"
    summary = ("Attach the target's (detached) root volume to a rescue instance in its AZ, "
               "launching one if no slot is free.")
    export_note = ("the rescue pool does not export: on Step Functions each target launches "
                   "a rescue instance of its own (max_per_az and volumes_per_instance do not "
                   "apply)")
    params = Record(fields={
        **LAUNCH_FIELDS,
        "volume_id": VOLUME_ID,
        "attach_timeout": Field(Duration(minimum=10, maximum=3600), default=300.0,
                                description="how long the attachment may take"),
    })
    outputs = {
        "rescue_instance_id": "the rescue instance holding the volume",
        "device": "the device name it is attached at (xvdf..xvdp)",
        "volume_id": "the volume attached",
        "availability_zone": "the volume's (and rescue instance's) AZ",
    }
    permissions = (
        "ec2:DescribeVolumes", "ec2:DescribeInstances", "ec2:DescribeImages",
        "ec2:DescribeSubnets", "ec2:RunInstances", "ec2:CreateTags", "ec2:AttachVolume",
        "ec2:DetachVolume", "ec2:TerminateInstances", "ssm:DescribeInstanceInformation",
        "iam:PassRole", "kms:CreateGrant", "kms:Decrypt", "ssm:GetParameter",
    )
    scoped_permissions = ATTACH
    mutating = True
    start_states = frozenset({"stopped"})
    risks = frozenset({SAME_AMI, "kms-key-unusable", "kms-key-denied", "kms-key-unchecked",
                       "marketplace-product-code", "rescue-image-unusable", "rescue-unmanageable",
                       "rescue-ssm-unchecked"})
    verify = "DescribeVolumes shows the volume attached to the rescue instance"
    undo = "rescue.detach_volume"

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        volume = params.get("volume_id") or ctx.facts.get("root_volume_id", "the root volume")
        az = ctx.facts.get("availability_zone", "its AZ")
        image = params["rescue_image_id"]
        # Resolved by inspection; else the probe sends resolve:ssm:, which AWS resolves too.
        image_id = rescue_image.known(ctx, image)
        problem = same_image_error(ctx, image_id, image) if image_id else None
        note = (f"attach {volume} to a rescue instance in {az} (launching one from "
                f"{rescue_image.shown(image_id, image)} as {params['instance_type']} if none "
                "has a free slot)")
        probe = probe_request(ctx.run_id, ctx.facts.get("availability_zone"),
                              config_of(params, image_id or image))
        return Plan(
            calls("ec2:RunInstances", note="only if no rescue instance has a free slot",
                  probe=probe)
            + calls("ec2:AttachVolume"),
            note=f"{note}; would fail: {problem}" if problem else note,
        )

    def program(self, params: Mapping[str, Any]) -> Program:
        _, image_id, shown = flows.rescue_image(params)
        volume = flows.volume_id(params)
        timeout = Var("params.attach_timeout")
        slot = Var("vars.slot")
        return program(
            *natives.image(params),
            If(((flows.same_image(image_id), (flows.same_image_refused(shown),)),)),
            *flows.named(volume),
            *natives.where_volume_is(volume),
            If(((All(Exists(HOLDER.instance_id), Eq(ATT.State, "detaching")), (
                # An undo was detaching it: let it finish, then attach afresh.
                flows.wait_available("freed", volume, timeout),
                natives.released(volume),
                *flows.read_volume(volume),
                natives.no_holder())),)),
            If(((All(Exists(ATT.InstanceId), Not(Exists(HOLDER.instance_id))), (Fail(Fmt(
                "volume ", volume, " is attached to ", ATT.InstanceId, " at ", ATT.Device, " (",
                ATT.State, "), not to a rescue instance of this run: detach it from there "
                "first")),)),)),
            If(((Exists(HOLDER.instance_id), (
                    Set("rescue", HOLDER.instance_id), Set("device", ATT.Device),
                    natives.resumed(RESCUE, DEVICE, volume, image_id))),
                (Not(Eq(VOLUME.State, "available")), (Fail(Fmt(
                    "volume ", volume, " is ", VOLUME.State, ", not available")),))),
               orelse=(natives.slot(params, volume, VOLUME.AvailabilityZone, image_id),
                       Set("rescue", slot.instance_id), Set("device", slot.device))),
            flows.wait_attached("attached", volume, RESCUE, timeout),
            natives.noted(RESCUE, DEVICE, volume),
            Done({"rescue_instance_id": RESCUE, "device": DEVICE, "volume_id": volume,
                  "availability_zone": VOLUME.AvailabilityZone}))

    def cleanup(self, params: Mapping[str, Any]) -> Program:
        return natives.iteration_cleanup()


@register
class Repair(ProgramAction):
    name = "rescue.repair"
    summary = ("Run the offline repair script on the rescue instance holding the volume "
               "(SSM Run Command) and fail with the script's error if it fails.")
    params = Record(fields={
        "script": script_field(DEFAULT_SCRIPT, "the repair script, relative to the playbook's "
                                               "folder; it gets $VolumeId (PowerShell) or "
                                               "VolumeId (sh) set"),
        "shell": SHELL_FIELD,
        "volume_id": VOLUME_ID,
        "rescue_instance_id": Field(
            Str(pattern=INSTANCE_ID_RE, pattern_name="an instance id (i-...)", templated=True),
            description="the rescue instance expected to hold the volume, e.g. "
                        "${{ steps.attach.outputs.rescue_instance_id }}"),
        "timeout": Field(Duration(minimum=30, maximum=6 * 3600), default=900.0,
                         description="how long the script may run"),
        "ready_timeout": READY_TIMEOUT,
        "bitlocker_keys": bitlocker_keys.FIELD,
    })
    outputs = {
        "stdout": "what the script reported (the files it deleted)",
        "exit_code": "the script's exit code (0)",
        "command_id": "the SSM command id",
        "rescue_instance_id": "where it ran",
    }
    permissions = ("ec2:DescribeVolumes", "ec2:DescribeInstances", "ssm:SendCommand",
                   "ssm:GetCommandInvocation", "ssm:ListCommandInvocations",
                   "ssm:DescribeInstanceInformation")
    scoped_permissions = REPAIR
    mutating = True
    start_states = frozenset({"stopped"})
    verify = "the SSM invocation ends Success with exit code 0"

    def validate(self, params: Mapping[str, Any], base_dir: str) -> list[Problem]:
        problems = script_shell_problems(base_dir, params, DEFAULT_SCRIPT)
        script = params.get("script", DEFAULT_SCRIPT)
        if not isinstance(script, str):
            return problems
        keys = bitlocker_keys.problem(params.get("bitlocker_keys"))
        if keys is None and params.get("bitlocker_keys") and shell_of(script, params.get(
                "shell", "auto")) == "sh":
            keys = (f"{script} runs on a Linux rescue instance, whose ntfs-3g cannot open "
                    "BitLocker: unlocking needs the PowerShell script on a Windows one")
        if keys is not None:
            problems.append(Problem(("bitlocker_keys",), keys))
        return problems

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        volume = params.get("volume_id") or ctx.facts.get("root_volume_id", "the root volume")
        return Plan(calls("ssm:SendCommand"),
                    note=f"run {params['script']} on the rescue instance holding {volume}")

    def program(self, params: Mapping[str, Any]) -> Program:
        volume = flows.volume_id(params)
        script = params["script"]
        shell = shell_of(script, params["shell"]) or "powershell"
        rescue, record = HOLDER.instance_id, Var("vars.invocation")
        expected = Var("params.rescue_instance_id")
        windows = Eq(HOLDER.platform, "windows")
        return program(
            *flows.named(volume),
            *natives.where_volume_is(volume),
            If(((Not(Exists(rescue)), (If(
                ((Exists(ATT.InstanceId), (_not_on(volume, "attached to ", ATT.InstanceId),)),),
                orelse=(_not_on(volume, VOLUME.State),)),)),)),
            *((If(((Not(Same(rescue, expected)), (Fail(Fmt(
                "volume ", volume, " is on rescue instance ", rescue, ", not ", expected)),)),)),)
              if params.get("rescue_instance_id") else ()),
            If(((Not(windows) if shell == "powershell" else windows, (Fail(Fmt(
                f"{script} is a {shell} script but rescue instance ", rescue,
                f" runs {'Linux' if shell == 'powershell' else 'Windows'}")),)),)),
            flows.wait_attached("attached", volume, rescue, 900.0),
            natives.ready(rescue),
            Set("commands", Script(shell, {"VolumeId": volume, **_key_variables(params, volume)},
                                   file=script, plain=PLAIN)),
            *run_script("invocation", rescue, SHELL_DOCUMENTS[shell], Var("vars.commands"),
                        params["timeout"], extra=volume),
            *judged("invocation", Fmt("offline repair of ", volume)),
            Done({"stdout": record.StandardOutputContent, "exit_code": record.ResponseCode,
                  "command_id": record.CommandId, "rescue_instance_id": rescue}))


# Ids AWS handed out, and the key's reference (its pattern needs no quoting beyond the
# shell's quotes): plain script variables, so Step Functions can set them too.
PLAIN: Final = frozenset({"VolumeId", "BitLockerKeys", "KeyRegion"})


def _key_variables(params: Mapping[str, Any], volume: Any) -> dict[str, Any]:
    """Where the script reads a locked volume's recovery key (nothing when unset): the
    reference and the Region, never the key (see :mod:`remediate.actions.bitlocker_keys`)."""
    if not params.get("bitlocker_keys"):
        return {}
    return {"BitLockerKeys": bitlocker_keys.reference(params, volume),
            "KeyRegion": Var("target.region")}


def _not_on(volume: Any, *where: Any) -> Fail:
    return Fail(Fmt("volume ", volume, " is not on a rescue instance of this run (it is ",
                    *where, "): run rescue.attach_volume first"))


@register
class DetachVolume(ProgramAction):
    name = "rescue.detach_volume"
    summary = "Detach the volume from its rescue instance and wait until it is available."
    params = Record(fields={
        "volume_id": VOLUME_ID,
        "timeout": Field(Duration(minimum=10, maximum=3600), default=600.0,
                         description="how long the detachment may take"),
    })
    outputs = {
        "volume_id": "the volume",
        "detached_from": "the rescue instance it was detached from ('' if it was on none)",
    }
    # TerminateInstances: on Step Functions each target's rescue instance goes with its volume.
    permissions = ("ec2:DescribeVolumes", "ec2:DescribeInstances", "ec2:DetachVolume",
                   "ec2:TerminateInstances")
    scoped_permissions = DETACH
    mutating = True
    start_states = frozenset({"stopped"})
    verify = "the volume is available"
    undo = "rescue.attach_volume"

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        volume = params.get("volume_id") or ctx.facts.get("root_volume_id", "the root volume")
        return Plan(calls("ec2:DetachVolume"),
                    note=f"detach {volume} from its rescue instance, wait available")

    def program(self, params: Mapping[str, Any]) -> Program:
        volume = flows.volume_id(params)
        rescue = HOLDER.instance_id
        return program(
            *flows.named(volume),
            *natives.where_volume_is(volume),
            If(((Not(Exists(rescue)), (natives.released(volume),
                                       Done({"volume_id": volume, "detached_from": ""}))),)),
            # Unless an undo is detaching it already. Never forced: a forced detach can
            # corrupt the file system just repaired.
            If(((Not(Eq(ATT.State, "detaching")), (Send(
                "ec2", "DetachVolume", {"VolumeId": volume, "InstanceId": rescue},
                note=Fmt("detach ", volume, " from rescue instance ", rescue),
                # Detaching or detached already (e.g. by our own DetachVolume, reply lost).
                on_error=(OnError(tuple(sorted(DETACH_CONFLICTS)), ()),)),)),)),
            flows.wait_available("freed", volume, Var("params.timeout")),
            # On Step Functions the instance held only this volume: it goes now.
            natives.released(volume, counterpart=(Send(
                "ec2", "TerminateInstances", {"InstanceIds": [rescue]}, batch_key="InstanceIds",
                note=Fmt("terminate rescue instance ", rescue)),)),
            Done({"volume_id": volume, "detached_from": rescue}))
