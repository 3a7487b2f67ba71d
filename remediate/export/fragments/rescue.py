"""Fragments of the rescue actions: one rescue instance per target, in the target's AZ.

The local run shares a pool of rescue instances per AZ (several volumes each);
a Step Functions iteration cannot share state with the others, so each target
launches its own (tagged with the run, the role and the target) and
``rescue.detach_volume`` terminates it as soon as the volume is off it. The
iteration's cleanup (:func:`cleanup`, run before the iteration ends, whatever
happened) terminates any left over, after taking a customer root volume off it:
no rescue instance outlives its target's iteration, and none is terminated
with a root volume on it. Costs: one RunInstances per target (the bucket
refills at 2/s: about 2 targets/s per account and Region, where the pool
launches a few per AZ) and a rescue instance billed for repair time per target.

``max_per_az`` and ``volumes_per_instance`` do not apply. The rescue instance's
own root volume keeps the AMI's DeleteOnTermination (AWS's Windows AMIs: true);
the local launch sets it explicitly, which needs the AMI's root volume size, a
value ASL cannot pick out of the image's block device list.
"""

from __future__ import annotations

import os
from typing import Any, Final

from remediate.actions.requests import StepFailed
from remediate.actions.rescue import SAME_AMI, SHELLS
from remediate.actions.rescue_image import parameter_of
from remediate.actions.rescue_launch import ROLE, ROLE_TAG, RUN_TAG
from remediate.actions.script_files import read_script
from remediate.actions.ssm import DELIVERY_TIMEOUT, IN_FLIGHT, SHELL_DOCUMENTS
from remediate.export import asl
from remediate.export.asl import Ref, States
from remediate.export.fragment import AslStep, Fragment, Poll, count_select, merge, poll, read
from remediate.export.fragments.ec2_instance import wait_instance
from remediate.export.fragments.ec2_volume import (
    attached,
    attachment_of,
    available,
    read_volume,
    same,
    settled,
)

TARGET_TAG: Final = "remediate:target"
NOT_READY: Final = ("shutting-down", "terminated", "stopping", "stopped")


def _ours(step: AslStep, *extra: dict[str, Any]) -> list[dict[str, Any]]:
    """DescribeInstances filters for this run's rescue instances."""
    return [{"Name": f"tag:{RUN_TAG}", "Values": [step.run_id]},
            {"Name": f"tag:{ROLE_TAG}", "Values": [ROLE]}, *extra]


def _online(step: AslStep, instance: Any, timeout: float) -> Poll:
    return Poll("online", "ssm", "DescribeInstanceInformation", {"Filters": [
        {"Key": "InstanceIds", "Values": [instance]}, {"Key": "PingStatus", "Values": ["Online"]}]},
        count_select("InstanceInformationList"), asl.at_least(step.at("online", "n"), 1),
        timeout, "SSM agent Online")


def _held_by_ours(step: AslStep, name: str, holder: str, yes: str, no: str) -> States:
    """Whether the instance at ``holder`` is a rescue instance of this run."""
    return {
        step.name(name): read(step, name, "ec2", "DescribeInstances", {"Filters": _ours(
            step, {"Name": "instance-id", "Values": [asl.path(holder)]})},
            {"res": Ref("$.Reservations")}, step.name(name, "found")),
        step.name(name, "found"): asl.choice(
            [(asl.present(step.at(name, "res[0]")), yes)], no),
    }


def _resolve_image(step: AslStep, image: Any, start: str) -> tuple[Any, str, States]:
    """``resolve:ssm:PARAMETER``: read the parameter in the execution's Region first
    (``$.r.image_id.id``). Returns the image (the AMI id, or where the resolved one is),
    the first state, and the states that resolve it (none for an AMI id)."""
    parameter = parameter_of(image) if isinstance(image, str) else None
    if parameter is None:
        return image, start, {}
    n = step.name
    return asl.path(step.at("image_id", "id")), n("resolve"), {
        n("resolve"): asl.task(
            "ssm", "GetParameter", {"Name": parameter}, start,
            select={"id": Ref("$.Parameter.Value")}, result_path=step.scratch("image_id"),
            catch=[{"ErrorEquals": [asl.TASK_FAILED], "ResultPath": step.scratch("refused"),
                    "Next": n("resolve", "failed")}]),
        n("resolve", "failed"): step.failure(
            f"rescue image {image} does not resolve: SSM parameter {parameter} does not "
            "exist in this Region, or cannot be read (ssm:GetParameter)"),
    }


def attach_volume(step: AslStep) -> Fragment:
    p = step.params
    n = step.name
    volume = step.value("volume_id", "root_volume_id")
    checked = n("volume") if SAME_AMI in step.accepted else n("same_ami")
    image, start, resolving = _resolve_image(step, p["rescue_image_id"], checked)
    rescue_id = asl.path(step.at("rescue", "i", "InstanceId"))
    device = asl.path(step.at("dev", "device"))
    holder = attachment_of(step, "volume", "InstanceId")
    online = poll(step, _online(step, rescue_id, p["ready_timeout"]), n("attach"))
    running = poll(step, wait_instance(step, "running", "running", p["ready_timeout"],
                                       instance_id=rescue_id, fail_on=NOT_READY), online.start)
    settle = poll(step, settled(step, "settle", volume, p["attach_timeout"]), n("volume"))
    on = poll(step, attached(step, "attached", volume, rescue_id, p["attach_timeout"]), n("done"))
    tags = [{"Key": RUN_TAG, "Value": step.run_id}, {"Key": ROLE_TAG, "Value": ROLE},
            {"Key": TARGET_TAG, "Value": step.target_id},
            {"Key": "Name", "Value": asl.fmt("remediate-rescue-", step.target_id)}]
    launch: dict[str, Any] = {
        "ImageId": image, "InstanceType": p["instance_type"], "MinCount": 1, "MaxCount": 1,
        "SubnetId": asl.path(step.at("subnet", "s", "SubnetId")),
        # Idempotent across the Task's own retries (a lost response must not launch twice),
        # not across runs of the state: AWS keeps answering a token with its instance for
        # at least 24 hours after it is terminated ("Ensuring idempotency in Amazon EC2 API
        # requests"), so a rerun after a rollback (its rescue terminated) needs a new one.
        "ClientToken": Ref("States.Hash(" + asl.fmt(
            step.run_id, ":", step.target_id, ":", step.step_id, ":",
            Ref("$$.State.EnteredTime")).expr + ", 'SHA-256')"),
        "MetadataOptions": {"HttpTokens": "required"},
        "TagSpecifications": [{"ResourceType": "instance", "Tags": tags},
                              {"ResourceType": "volume", "Tags": tags}],
    }
    if p["security_group_ids"]:
        launch["SecurityGroupIds"] = list(p["security_group_ids"])
    if p.get("instance_profile"):
        profile = p["instance_profile"]
        launch["IamInstanceProfile"] = ({"Arn": profile} if str(profile).startswith("arn:")
                                        else {"Name": profile})
    az = asl.path(step.at("volume", "v", "AvailabilityZone"))
    if p["subnet_ids"]:
        subnet_filters = [{"Name": "subnet-id", "Values": list(p["subnet_ids"])},
                          {"Name": "availability-zone", "Values": [az]}]
        no_subnet = asl.fmt("none of subnet_ids is in ", az, ": add a subnet in ", az)
    else:
        subnet_filters = [{"Name": "availability-zone", "Values": [az]},
                          {"Name": "default-for-az", "Values": ["true"]}]
        no_subnet = asl.fmt("no default subnet in ", az, ": set subnet_ids to a subnet in ", az)
    states: States = dict(resolving)
    if SAME_AMI not in step.accepted:
        states[checked] = asl.choice(
            [(same("$.target.image_id", image), n("same_ami", "refuse"))], n("volume"))
        via = f" ({p['rescue_image_id']})" if resolving else ""
        states[n("same_ami", "refuse")] = step.failure(asl.fmt(
            "rescue_image_id ", image, via + " is the AMI ", step.target_id, " was launched "
            "from: its disk would collide with the rescue instance disk (disk signature); use "
            "a different Windows version, or --accept same-ami-rescue"))
    return Fragment(start, merge(
        states, online, running, settle, on,
        read_volume(step, "volume", volume, n("route"), n("free")),
        _held_by_ours(step, "holder", holder, n("resume"), n("not_ours")), {
            n("route"): asl.choice([
                (asl.equals(attachment_of(step, "volume", "State"), "detaching"), settle.start),
                (asl.same_as(holder, step.target_id.expr), n("on_target"))], n("holder")),
            n("on_target"): step.failure(asl.fmt(
                "volume ", volume, " is still attached to ", step.target_id,
                ": detach it first (ec2.detach_root)")),
            n("not_ours"): step.failure(asl.fmt(
                "volume ", volume, " is attached to ", asl.path(holder),
                ", not to a rescue instance of this run: detach it from there first")),
            n("resume"): asl.pass_state(n("resume", "device"), parameters={
                "i": {"InstanceId": asl.path(holder)}}, result_path=step.scratch("rescue")),
            n("resume", "device"): asl.pass_state(online.start, parameters={
                "device": asl.path(attachment_of(step, "volume", "Device"))},
                result_path=step.scratch("dev")),
            n("free"): asl.choice(
                [(asl.equals(step.at("volume", "v", "State"), "available"), n("find"))],
                n("busy")),
            n("busy"): step.failure(asl.fmt("volume ", volume, " is ",
                                            asl.path(step.at("volume", "v", "State")),
                                            ", not available")),
            n("find"): read(step, "find", "ec2", "DescribeInstances", {"Filters": _ours(
                step, {"Name": f"tag:{TARGET_TAG}", "Values": [step.target_id]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]})},
                {"res": Ref("$.Reservations")}, n("find", "found")),
            n("find", "found"): asl.choice(
                [(asl.present(step.at("find", "res[0]")), n("reuse"))], n("image")),
            n("reuse"): asl.pass_state(n("image"), parameters={
                "i": Ref(step.at("find", "res[0]", "Instances[0]"))},
                result_path=step.scratch("rescue")),
            n("image"): read(step, "images", "ec2", "DescribeImages", {"ImageIds": [image]},
                             {"list": Ref("$.Images")}, n("image", "found")),
            n("image", "found"): asl.choice(
                [(asl.present(step.at("images", "list[0]")), n("image", "pick"))],
                n("image", "missing")),
            n("image", "missing"): step.failure(asl.fmt("rescue image ", image, " not found")),
            n("image", "pick"): asl.pass_state(n("image", "route"), parameters={
                "img": Ref(step.at("images", "list[0]"))}, result_path=step.scratch("image")),
            n("image", "route"): asl.choice([
                (asl.negate(asl.equals(step.at("image", "img", "State"), "available")),
                 n("image", "unusable")),
                (asl.equals(step.at("image", "img", "Platform"), "windows"), n("device", "win"))],
                n("device", "linux")),
            n("image", "unusable"): step.failure(asl.fmt(
                "rescue image ", image, " is ", asl.path(step.at("image", "img", "State")))),
            # One volume per rescue instance: always the first data slot.
            n("device", "win"): asl.pass_state(n("launched"), result={"device": "xvdf"},
                                               result_path=step.scratch("dev")),
            n("device", "linux"): asl.pass_state(n("launched"), result={"device": "/dev/xvdf"},
                                                 result_path=step.scratch("dev")),
            n("launched"): asl.choice([(asl.present(step.at("rescue", "i")), running.start)],
                                      n("subnet")),
            n("subnet"): read(step, "subnets", "ec2", "DescribeSubnets",
                              {"Filters": subnet_filters}, {"list": Ref("$.Subnets")},
                              n("subnet", "found")),
            n("subnet", "found"): asl.choice(
                [(asl.present(step.at("subnets", "list[0]")), n("subnet", "pick"))],
                n("subnet", "none")),
            n("subnet", "none"): step.failure(no_subnet),
            n("subnet", "pick"): asl.pass_state(n("launch"), parameters={
                "s": Ref(step.at("subnets", "list[0]"))}, result_path=step.scratch("subnet")),
            n("launch"): asl.task("ec2", "RunInstances", launch, running.start,
                                  select={"i": Ref("$.Instances[0]")},
                                  result_path=step.scratch("rescue")),
            n("attach"): asl.task("ec2", "AttachVolume", {
                "VolumeId": volume, "InstanceId": rescue_id, "Device": device}, on.start),
            n("done"): step.done({"rescue_instance_id": rescue_id, "device": device,
                                  "volume_id": volume, "availability_zone": az}),
        }))


def _script(step: AslStep) -> tuple[str, str]:
    """(document, script text), read now: the definition carries the script."""
    script, shell = step.params["script"], step.params["shell"]
    if shell == "auto":
        shell = SHELLS.get(os.path.splitext(script)[1].lower(), "")
    if not shell:
        raise step.unsupported(f"cannot tell the shell of {script}: set shell")
    try:
        lines = read_script(step.base_dir, script)
    except StepFailed as exc:
        raise step.unsupported(str(exc)) from exc
    return SHELL_DOCUMENTS[shell], "\n".join(lines)


def repair(step: AslStep) -> Fragment:
    p = step.params
    document, body = _script(step)
    volume = step.value("volume_id", "root_volume_id")
    holder = attachment_of(step, "volume", "InstanceId")
    rescue = asl.path(holder)
    command = asl.path(step.at("command", "id"))
    result = step.at("result")
    n = step.name
    # Double quotes: an intrinsic literal cannot hold a single quote on moto, and a
    # volume id (vol- and hex digits) expands to itself in either shell.
    assign = '$VolumeId = "' if document == "AWS-RunPowerShellScript" else 'VolumeId="'

    on = poll(step, attached(step, "attached", volume, rescue, p["ready_timeout"]),
              n("online"))
    online = poll(step, _online(step, rescue, p["ready_timeout"]), n("script"))
    ended = poll(step, Poll(
        "invocation", "ssm", "GetCommandInvocation", {"CommandId": command, "InstanceId": rescue},
        {"status": Ref("$.Status")},
        asl.all_of(asl.present(step.at("invocation", "status")),
                   asl.negate(asl.one_of(step.at("invocation", "status"), sorted(IN_FLIGHT)))),
        p["timeout"] + DELIVERY_TIMEOUT, "the repair script finished"), n("result"))
    expected = p.get("rescue_instance_id")
    check = n("expected") if expected else on.start
    states = merge(
        on, online, ended,
        read_volume(step, "volume", volume, n("route"), n("not_on")),
        _held_by_ours(step, "holder", holder, check, n("not_on")), {
            n("route"): asl.choice([(asl.same_as(holder, step.target_id.expr), n("not_on"))],
                                   n("holder")),
            n("not_on"): step.failure(asl.fmt(
                "volume ", volume, " is not on a rescue instance of this run: run "
                "rescue.attach_volume first")),
            n("script"): asl.pass_state(n("send"), result={"body": body},
                                        result_path=step.scratch("script")),
            n("send"): asl.task("ssm", "SendCommand", {
                "InstanceIds": [rescue], "DocumentName": document,
                "Comment": asl.fmt("remediate ", step.step_id, " ", volume),
                "TimeoutSeconds": DELIVERY_TIMEOUT,
                "Parameters": {"commands": [asl.fmt(assign, volume, '"'),
                                            asl.path(step.at("script", "body"))],
                               "executionTimeout": [str(int(p["timeout"]))]},
            }, ended.start, select={"id": Ref("$.Command.CommandId")},
                result_path=step.scratch("command")),
            n("result"): read(step, "result", "ssm", "GetCommandInvocation",
                              {"CommandId": command, "InstanceId": rescue},
                              {"status": Ref("$.Status"), "code": Ref("$.ResponseCode"),
                               "out": Ref("$.StandardOutputContent"),
                               "err": Ref("$.StandardErrorContent")}, n("result", "route")),
            n("result", "route"): asl.choice([(asl.all_of(
                asl.equals(f"{result}.status", "Success"), asl.equals(f"{result}.code", 0)),
                n("done"))], n("failed")),
            n("failed"): step.failure(asl.fmt(
                "offline repair of ", volume, " failed: SSM command ", command, " on ", rescue,
                " ended ", asl.path(f"{result}.status"), " with exit code ",
                asl.path(f"{result}.code"), ": ", asl.path(f"{result}.err"))),
            n("done"): step.done({"stdout": asl.path(f"{result}.out"),
                                  "exit_code": asl.path(f"{result}.code"),
                                  "command_id": command, "rescue_instance_id": rescue}),
        })
    if expected:
        states[n("expected")] = asl.choice([(same(holder, expected), on.start)],
                                           n("expected", "other"))
        states[n("expected", "other")] = step.failure(asl.fmt(
            "volume ", volume, " is on rescue instance ", rescue, ", not ", expected))
    return Fragment(n("volume"), states)


def detach_volume(step: AslStep) -> Fragment:
    """Take the volume off its rescue instance, then terminate that instance (it held
    only this volume)."""
    volume = step.value("volume_id", "root_volume_id")
    holder = attachment_of(step, "volume", "InstanceId")
    n = step.name
    free = poll(step, available(step, "available", volume, step.params["timeout"]),
                n("terminate"))
    return Fragment(n("volume"), merge(
        free, read_volume(step, "volume", volume, n("route"), n("none")),
        _held_by_ours(step, "holder", holder, n("detach"), n("none")), {
            n("route"): asl.choice([(asl.same_as(holder, step.target_id.expr), n("none"))],
                                   n("holder")),
            n("detach"): asl.task("ec2", "DetachVolume", {
                "VolumeId": volume, "InstanceId": asl.path(holder)}, free.start,
                catch=[{"ErrorEquals": [asl.TASK_FAILED], "ResultPath": step.scratch("refused"),
                        "Next": free.start}],
                comment="never forced: a forced detach can corrupt the repaired file system"),
            n("terminate"): asl.task("ec2", "TerminateInstances",
                                     {"InstanceIds": [asl.path(holder)]}, n("done")),
            n("none"): step.done({"volume_id": volume, "detached_from": ""}),
            n("done"): step.done({"volume_id": volume, "detached_from": asl.path(holder)}),
        }))


def cleanup(step: AslStep) -> Fragment:
    """Terminate this target's rescue instances, taking root volumes off them first.

    A volume that will not come off fails the cleanup (its instance is kept);
    others are left ``available`` like the local pool's ``finish``.
    """
    n = step.name
    rescue = asl.path(step.at("rescue", "i", "InstanceId"))
    volume = asl.path(step.at("held_vol", "v", "VolumeId"))
    free = poll(step, available(step, "available", volume, 600.0), n("held"))
    return Fragment(n("find"), merge(free, {
        n("find"): read(step, "find", "ec2", "DescribeInstances", {"Filters": _ours(
            step, {"Name": f"tag:{TARGET_TAG}", "Values": [step.target_id]},
            {"Name": "instance-state-name",
             "Values": ["pending", "running", "stopping", "stopped"]})},
            {"res": Ref("$.Reservations")}, n("find", "found")),
        n("find", "found"): asl.choice([(asl.present(step.at("find", "res[0]")), n("pick"))],
                                       n("done")),
        n("pick"): asl.pass_state(n("held"), parameters={
            "i": Ref(step.at("find", "res[0]", "Instances[0]"))},
            result_path=step.scratch("rescue")),
        n("held"): read(step, "held", "ec2", "DescribeVolumes", {"Filters": [
            {"Name": "attachment.instance-id", "Values": [rescue]},
            {"Name": "tag-key", "Values": ["remediate:root-of"]}]},
            {"list": Ref("$.Volumes")}, n("held", "found")),
        n("held", "found"): asl.choice(
            [(asl.present(step.at("held", "list[0]")), n("held", "pick"))], n("terminate")),
        n("held", "pick"): asl.pass_state(n("detach"), parameters={
            "v": Ref(step.at("held", "list[0]"))}, result_path=step.scratch("held_vol")),
        n("detach"): asl.task("ec2", "DetachVolume", {"VolumeId": volume, "InstanceId": rescue},
                              free.start, catch=[{"ErrorEquals": [asl.TASK_FAILED],
                                                  "ResultPath": step.scratch("refused"),
                                                  "Next": free.start}]),
        n("terminate"): asl.task("ec2", "TerminateInstances", {"InstanceIds": [rescue]},
                                 n("find")),
        n("done"): step.done({}),
    }))


def prepare(step: AslStep) -> Fragment:
    """rescue.prepare: nothing to do ahead, each target launches its own at the attach."""
    done = step.name("done")
    return Fragment(done, {done: step.done({"rescue_instance_id": ""})})
