"""Offline repair through a rescue instance: attach the broken volume, repair, detach.

Each action starts by reading the volume (``DescribeVolumes``): a volume already
on a rescue instance of this run is recognised by its attachment, so a resumed
step picks up where the crash left it. The rescue instances themselves are the
run-wide :class:`~remediate.actions.rescue_pool.RescuePool`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from remediate.actions import rescue_image
from remediate.actions.contract import Action, Plan, StepContext, calls
from remediate.actions.lost_replies import ATTACH_CONFLICTS, conflict
from remediate.actions.registry import register
from remediate.actions.requests import ActionRun, AwsError, Call, StepFailed, Wait, observe
from remediate.actions.rescue_launch import SLOTS, Pulled, RescueConfig, probe_request
from remediate.actions.rescue_permissions import ATTACH, DETACH, REPAIR
from remediate.actions.rescue_pool import RescueInstance, RescuePool, Slot, detach_from_rescue
from remediate.actions.script_files import read_script, script_problems
from remediate.actions.ssm import (
    INSTANCE_ID_RE,
    SHELL_DOCUMENTS,
    adopts_command,
    build_script,
    command_comment,
    known_commands,
    run_script,
)
from remediate.language.problems import Problem
from remediate.language.schema import Choice, Duration, Field, Int, ListOf, Record, Str

if TYPE_CHECKING:
    from remediate.export.fragment import AslStep, Fragment

__all__ = ["AttachVolume", "DetachVolume", "Repair", "RescuePool"]

SAME_AMI: Final = "same-ami-rescue"
DEFAULT_SCRIPT: Final = "scripts/crowdstrike-offline-repair.ps1"
SHELLS: Final = {".ps1": "powershell", ".sh": "sh"}
_DEVICE_TRIES: Final = 3

VOLUME_ID = Field(
    Str(pattern=r"vol-[0-9a-f]{8,17}", pattern_name="a volume id (vol-...)", templated=True),
    description="the EBS volume; default: the target's root volume (fact root_volume_id)")
READY_TIMEOUT = Field(Duration(minimum=60, maximum=3 * 3600), default=1200.0,
                      description="how long a rescue instance may take to run with its SSM "
                                  "agent Online")


def accepted_findings(ctx: StepContext) -> frozenset[str]:
    """Finding kinds the operator accepted for this target (``--accept``)."""
    return ctx.accepted


def volume_id_of(ctx: StepContext, params: Mapping[str, Any]) -> str:
    volume_id = params.get("volume_id") or ctx.facts.get("root_volume_id")
    if not volume_id:
        raise StepFailed(f"no volume to work on: {ctx.target.id} has no root_volume_id fact "
                         "and volume_id is not set")
    return str(volume_id)


def attachment_of(volume: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    attachments = (volume or {}).get("Attachments") or []
    return attachments[0] if attachments else None


def attached_to(instance_id: str) -> Any:
    def check(volume: Mapping[str, Any] | None) -> bool:
        found = attachment_of(volume)
        return bool(found and found.get("InstanceId") == instance_id
                    and found.get("State") == "attached")

    return check


def same_image_error(ctx: StepContext, image_id: str, image: str) -> str | None:
    """Why the rescue AMI ``image_id`` (what ``image``, the step's rescue_image_id, names
    in the target's Region) must not be used for this target (None: it may)."""
    if ctx.facts.get("image_id") != image_id or SAME_AMI in accepted_findings(ctx):
        return None
    return (f"rescue_image_id {rescue_image.shown(image_id, image)} is the AMI "
            f"{ctx.target.id} was launched from: its disk would collide with the rescue "
            "instance's (disk signature) and onlining it can leave it unbootable; use a "
            "different Windows version, or --accept same-ami-rescue")


_CONFIG_FIELDS: Final = ("instance_type", "instance_profile", "max_per_az",
                         "volumes_per_instance", "ready_timeout")


def config_of(params: Mapping[str, Any], image_id: str) -> RescueConfig:
    """How to launch rescue instances from ``image_id`` (what rescue_image_id names in the
    Region), from rescue.attach_volume's parameters (those not given keep RescueConfig's
    defaults, which are the parameters' defaults)."""
    config = RescueConfig(image_id=image_id,
                          subnet_ids=tuple(params.get("subnet_ids") or ()),
                          security_group_ids=tuple(params.get("security_group_ids") or ()))
    return replace(config, **{name: params[name] for name in _CONFIG_FIELDS
                              if params.get(name) is not None})


def _observe_volume(volume_id: str) -> Pulled:
    volume = yield observe("volume", volume_id)
    if volume is None:
        raise StepFailed(f"volume {volume_id} does not exist")
    return volume


def _rescue_holding(ctx: StepContext, volume: Mapping[str, Any]) -> Pulled:
    """The rescue instance of this run ``volume`` is attached to, or None."""
    found = attachment_of(volume)
    if found is None:
        return None
    rescue = yield from ctx.service(RescuePool).known(ctx, str(found["InstanceId"]))
    return rescue


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
    "instance_profile": Field(Str(max_len=2048),
                              description="instance profile (name or ARN) giving rescue "
                                          "instances SSM access (AmazonSSMManagedInstance"
                                          "Core)"),
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
class AttachVolume(Action):
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
    risks = frozenset({SAME_AMI, "kms-key-unusable", "marketplace-product-code",
                       "rescue-image-unusable"})
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

    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        image = params["rescue_image_id"]
        config = config_of(params, (yield from rescue_image.resolved(ctx, image)))
        problem = same_image_error(ctx, config.image_id, image)
        if problem:
            raise StepFailed(problem)
        volume_id = volume_id_of(ctx, params)
        pool = ctx.service(RescuePool)
        volume = yield from _observe_volume(volume_id)
        found = attachment_of(volume)
        rescue = yield from _rescue_holding(ctx, volume)
        if rescue is not None and found is not None and found.get("State") == "detaching":
            # An undo was detaching it: let it finish, then attach afresh.
            yield from detach_from_rescue(volume_id, rescue.instance_id, params["attach_timeout"],
                                          state="detaching")
            pool.release(ctx, volume_id)
            volume = yield from _observe_volume(volume_id)
            found, rescue = attachment_of(volume), None
        if found is not None and rescue is None:
            raise StepFailed(f"volume {volume_id} is attached to {found['InstanceId']} at "
                             f"{found.get('Device')} ({found.get('State')}), not to a rescue "
                             "instance of this run: detach it from there first")
        if rescue is not None:
            assert found is not None
            device = str(found["Device"])
            pool.note_attached(ctx, rescue, device, volume_id)
            yield from pool.ready(ctx, rescue, config)
        elif volume.get("State") != "available":
            raise StepFailed(f"volume {volume_id} is {volume.get('State')}, not available")
        else:
            slot = yield from self._attach(ctx, pool, config, volume_id,
                                           str(volume["AvailabilityZone"]))
            rescue, device = slot.rescue, slot.device
        yield Wait("volume", volume_id, until=attached_to(rescue.instance_id),
                   timeout=params["attach_timeout"],
                   what=f"{volume_id} attached to {rescue.instance_id}")
        pool.note_attached(ctx, rescue, device, volume_id)
        return {"rescue_instance_id": rescue.instance_id, "device": device,
                "volume_id": volume_id, "availability_zone": rescue.az}

    def _attach(self, ctx: StepContext, pool: RescuePool, config: RescueConfig,
                volume_id: str, az: str) -> Pulled:
        for attempt in range(1, _DEVICE_TRIES + 1):
            slot: Slot = yield from pool.acquire(ctx, config, az, volume_id)
            try:
                yield Call("ec2", "AttachVolume",
                           {"VolumeId": volume_id, "InstanceId": slot.rescue.instance_id,
                            "Device": slot.device},
                           note=f"attach {volume_id} to rescue {slot.rescue.instance_id}")
                return slot
            except GeneratorExit:  # the step was cancelled: let another volume have the slot
                pool.release(ctx, volume_id)
                raise
            except AwsError as exc:
                if exc.code in ATTACH_CONFLICTS and ctx.reply_lost("AttachVolume"):
                    # Our own lost AttachVolume may hold it (the slot stays reserved).
                    raise conflict(ctx, exc, volume_id) from exc
                taken = exc.code == "InvalidParameterValue" and "already in use" in exc.message
                if taken:
                    pool.mark_taken(ctx, slot, volume_id)
                else:
                    pool.release(ctx, volume_id)
                if not taken or attempt == _DEVICE_TRIES:
                    raise StepFailed(f"attaching {volume_id} to rescue instance "
                                     f"{slot.rescue.instance_id} at {slot.device} failed: "
                                     f"{exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def asl(self, step: AslStep) -> Fragment:
        from remediate.export.fragments import rescue

        return rescue.attach_volume(step)

    def asl_cleanup(self, step: AslStep) -> Fragment | None:
        from remediate.export.fragments import rescue

        return rescue.cleanup(step)


@register
class Repair(Action):
    name = "rescue.repair"
    summary = ("Run the offline repair script on the rescue instance holding the volume "
               "(SSM Run Command) and fail with the script's error if it fails.")
    params = Record(fields={
        "script": Field(Str(max_len=1024), default=DEFAULT_SCRIPT,
                        description="the repair script, relative to the playbook's folder; it "
                                    "gets $VolumeId (PowerShell) or VolumeId (sh) set"),
        "shell": Field(Choice(values=("auto", "powershell", "sh")), default="auto",
                       description="the script's shell; auto: by extension (.ps1, .sh)"),
        "volume_id": VOLUME_ID,
        "rescue_instance_id": Field(
            Str(pattern=INSTANCE_ID_RE, pattern_name="an instance id (i-...)", templated=True),
            description="the rescue instance expected to hold the volume, e.g. "
                        "${{ steps.attach.outputs.rescue_instance_id }}"),
        "timeout": Field(Duration(minimum=30, maximum=6 * 3600), default=900.0,
                         description="how long the script may run"),
        "ready_timeout": READY_TIMEOUT,
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
        script = params.get("script", DEFAULT_SCRIPT)
        if not isinstance(script, str):
            return []
        problems = script_problems(base_dir, script, ("script",))
        if params.get("shell", "auto") == "auto" and _shell(script, "auto") is None:
            problems.append(Problem(("shell",), f"cannot tell the shell of {script} from its "
                                                "extension: set shell to powershell or sh"))
        return problems

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        volume = params.get("volume_id") or ctx.facts.get("root_volume_id", "the root volume")
        return Plan(calls("ssm:SendCommand"),
                    note=f"run {params['script']} on the rescue instance holding {volume}")

    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        volume_id = volume_id_of(ctx, params)
        volume = yield from _observe_volume(volume_id)
        rescue: RescueInstance | None = yield from _rescue_holding(ctx, volume)
        if rescue is None:
            found = attachment_of(volume)
            where = (f"attached to {found['InstanceId']}" if found
                     else str(volume.get("State", "not attached")))
            raise StepFailed(f"volume {volume_id} is not on a rescue instance of this run (it "
                             f"is {where}): run rescue.attach_volume first")
        expected = params.get("rescue_instance_id")
        if expected and expected != rescue.instance_id:
            raise StepFailed(f"volume {volume_id} is on rescue instance {rescue.instance_id}, "
                             f"not {expected}")
        shell = _shell(params["script"], params["shell"]) or "powershell"
        if (shell == "powershell") != (rescue.platform == "windows"):
            raise StepFailed(f"{params['script']} is a {shell} script but rescue instance "
                             f"{rescue.instance_id} runs {rescue.platform.title()}")
        yield Wait("volume", volume_id, until=attached_to(rescue.instance_id),
                   what=f"{volume_id} attached to {rescue.instance_id}")
        config = RescueConfig(image_id=rescue.image_id, ready_timeout=params["ready_timeout"])
        yield from ctx.service(RescuePool).ready(ctx, rescue, config)
        lines = build_script(shell, {"VolumeId": volume_id},
                             read_script(ctx.base_dir, params["script"]))
        invocation = yield from run_script(
            rescue.instance_id, SHELL_DOCUMENTS[shell], lines, timeout=params["timeout"],
            comment=command_comment(ctx.run_id, ctx.step_id, volume_id), now=ctx.clock.wall(),
            may_be_in_flight=ctx.may_have_sent("SendCommand"), adopt=adopts_command(ctx),
            known=known_commands(ctx))
        if not invocation.ok:
            raise StepFailed(invocation.failure(f"offline repair of {volume_id}"))
        return {"stdout": invocation.stdout, "exit_code": invocation.exit_code,
                "command_id": invocation.command_id, "rescue_instance_id": rescue.instance_id}

    def asl(self, step: AslStep) -> Fragment:
        from remediate.export.fragments import rescue

        return rescue.repair(step)


def _shell(script: str, shell: str) -> str | None:
    if shell != "auto":
        return shell
    return SHELLS.get(os.path.splitext(script)[1].lower())


@register
class DetachVolume(Action):
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

    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        volume_id = volume_id_of(ctx, params)
        pool = ctx.service(RescuePool)
        volume = yield from _observe_volume(volume_id)
        rescue: RescueInstance | None = yield from _rescue_holding(ctx, volume)
        if rescue is None:
            pool.release(ctx, volume_id)
            return {"volume_id": volume_id, "detached_from": ""}
        state = str((attachment_of(volume) or {}).get("State", ""))
        yield from detach_from_rescue(volume_id, rescue.instance_id, params["timeout"], state)
        pool.release(ctx, volume_id)
        return {"volume_id": volume_id, "detached_from": rescue.instance_id}

    def asl(self, step: AslStep) -> Fragment:
        from remediate.export.fragments import rescue

        return rescue.detach_volume(step)
