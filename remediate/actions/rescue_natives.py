"""The rescue programs' steps that only the local engine can run, and what a Step
Functions iteration does instead.

Locally every target of a run shares the :class:`~remediate.actions.rescue_pool.RescuePool`
(rescue instances per AZ, several volumes each, discovered once per Region) and one
answer per account and Region for a ``resolve:ssm:`` rescue image: run-wide state, so
each step touching them is a :class:`~remediate.actions.program.Native`. An iteration
on Step Functions shares nothing with the others: each target launches a rescue
instance of its own (tagged with the run, the role and the target) in its volume's AZ,
at device ``xvdf``, reads the image parameter itself, ``rescue.detach_volume``
terminates the instance once the volume is off it, and :func:`iteration_cleanup` runs
at the iteration's end whatever happened. Each Native's ``counterpart`` is that, as
program steps.

What that costs on Step Functions: one RunInstances and one GetParameter per target (the
launch bucket refills at 2/s: about 2 targets/s per account and Region, where the pool
launches a few per AZ), a rescue instance billed for repair time per target, and
``max_per_az`` and ``volumes_per_instance`` do not apply. The rescue instance's root
volume keeps the AMI's DeleteOnTermination (AWS's Windows AMIs: true); the local launch
sets it, which needs the AMI's root volume size, which a definition cannot pick out of
the image's block device list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from remediate.actions import rescue_image
from remediate.actions.contract import StepContext
from remediate.actions.interpret import Scope, evaluate
from remediate.actions.lost_replies import ATTACH_CONFLICTS, DETACH_CONFLICTS, conflict
from remediate.actions.program import (
    TARGET_ID,
    Await,
    Done,
    Eq,
    Exists,
    Expr,
    Fail,
    Fmt,
    Get,
    If,
    Loop,
    Native,
    Not,
    OnError,
    Program,
    Read,
    Send,
    Seq,
    Set,
    Var,
    program,
    token,
)
from remediate.actions.requests import AwsError, Call, StepFailed
from remediate.actions.rescue_flows import ATT, IT, read_volume, usable
from remediate.actions.rescue_launch import (
    SLOTS,
    Pulled,
    RescueConfig,
    config_of,
    instance_request,
    rescue_tags,
    tag_filters,
)
from remediate.actions.rescue_pool import RescueInstance, RescuePool, Slot

TARGET_TAG: Final = "remediate:target"
_DEVICE_TRIES: Final = 3
# Every way a data slot's device may be written (xvdf, /dev/xvdf, /dev/sdf).
SLOT_DEVICES: Final = tuple(name for slot in SLOTS
                            for name in (slot, f"/dev/{slot}", f"/dev/sd{slot[3:]}"))
RUN_ID: Final = Var("run.id")
_POOL: Final = "the rescue instances are the run's pool, shared by all its targets"


def _text(expr: Expr, scope: Scope) -> str:
    return str(evaluate(expr, scope))


def _known(ctx: StepContext, instance: Expr, scope: Scope) -> Pulled:
    """The pool's rescue instance with that id (an earlier step of the program found it)."""
    instance_id = _text(instance, scope)
    rescue: RescueInstance | None = yield from ctx.service(RescuePool).known(ctx, instance_id)
    if rescue is None:
        raise StepFailed(f"{instance_id} is not a rescue instance of this run")
    return rescue


# ---- the rescue image ------------------------------------------------------------------


def image(params: Mapping[str, Any]) -> Seq:
    """``vars.image.id``: the AMI a ``resolve:ssm:`` rescue_image_id names in the target's
    Region (nothing for an AMI id)."""
    parameter = rescue_image.parameter_of(params["rescue_image_id"]) \
        if isinstance(params["rescue_image_id"], str) else None
    if parameter is None:
        return ()

    def local(ctx: StepContext, params: Mapping[str, Any], scope: Scope) -> Pulled:
        return {"id": (yield from rescue_image.resolved(ctx, params["rescue_image_id"]))}

    return (Native("rescue image", into="image", local=local, asl=None,
                   why="resolved once per account and Region for the whole run",
                   counterpart=(Get("image", "ssm", "GetParameter", {"Name": parameter},
                                    pick={"id": "Parameter.Value"}),)),)


# ---- where the volume is ---------------------------------------------------------------


def where_volume_is(volume: Expr) -> Seq:
    """``vars.volume`` (the step fails when it does not exist), ``vars.att`` and
    ``vars.holder`` (see :mod:`remediate.actions.rescue_flows`)."""
    return (*read_volume(volume),
            If(((Exists(ATT.InstanceId), (_holder(ATT.InstanceId),)),), orelse=(no_holder(),)))


def no_holder() -> Set:
    return Set("holder", {"instance_id": None})


def _holder(instance: Expr) -> Native:
    def local(ctx: StepContext, params: Mapping[str, Any], scope: Scope) -> Pulled:
        found = yield from ctx.service(RescuePool).known(ctx, _text(instance, scope))
        if found is None:
            return {"instance_id": None}
        return {"instance_id": found.instance_id, "platform": found.platform,
                "image_id": found.image_id}

    listed, record = Var("vars.holder_found.list").at(0), Var("vars.holder_rec")
    return Native(
        "the rescue instance holding it", into="holder", local=local, asl=None, why=_POOL,
        counterpart=(
            Get("holder_found", "ec2", "DescribeInstances", {"Filters": tag_filters(
                RUN_ID, (), {"Name": "instance-id", "Values": [instance]})},
                pick={"list": "Reservations[*]"}),
            If(((Exists(listed), (
                Set("holder_rec", listed.Instances.at(0)),
                Set("holder_platform", record.Platform),  # absent on Linux: null
                Set("holder", {"instance_id": record.InstanceId,
                               "platform": Var("vars.holder_platform"),
                               "image_id": record.ImageId}))),),
               orelse=(no_holder(),))))


# ---- the pool --------------------------------------------------------------------------


def resumed(instance: Expr, device: Expr, volume: Expr, image_id: Expr) -> Native:
    """The volume is on ``instance`` already (a resumed step): the pool notes it there,
    and the instance is made usable (this target drives it if no other does)."""

    def local(ctx: StepContext, params: Mapping[str, Any], scope: Scope) -> Pulled:
        rescue = yield from _known(ctx, instance, scope)
        pool = ctx.service(RescuePool)
        pool.note_attached(ctx, rescue, _text(device, scope), _text(volume, scope))
        yield from pool.ready(ctx, rescue, config_of(params, _text(image_id, scope)))
        return {}

    return Native("rescue instance usable", into="resumed", local=local, asl=None, why=_POOL,
                  counterpart=usable(instance, Var("params.ready_timeout")))


def ready(instance: Expr) -> Native:
    """``instance`` (holding the volume) is usable: running, its SSM agent Online."""

    def local(ctx: StepContext, params: Mapping[str, Any], scope: Scope) -> Pulled:
        rescue = yield from _known(ctx, instance, scope)
        config = RescueConfig(image_id=rescue.image_id, ready_timeout=params["ready_timeout"])
        yield from ctx.service(RescuePool).ready(ctx, rescue, config)
        return {}

    return Native("rescue instance usable", into="ready", local=local, asl=None, why=_POOL,
                  counterpart=usable(instance, Var("params.ready_timeout")))


def noted(instance: Expr, device: Expr, volume: Expr) -> Native:
    """AWS shows the volume attached at ``device``: the pool's slot is confirmed."""

    def local(ctx: StepContext, params: Mapping[str, Any], scope: Scope) -> Pulled:
        rescue = yield from _known(ctx, instance, scope)
        ctx.service(RescuePool).note_attached(ctx, rescue, _text(device, scope),
                                              _text(volume, scope))
        return {}

    return Native("slot noted", into="noted", local=local, asl=None, why=_POOL,
                  counterpart=())


def released(volume: Expr, counterpart: Seq = ()) -> Native:
    """The volume holds no slot any more: targets waiting for one wake up. On Step
    Functions: ``counterpart``."""

    def local(ctx: StepContext, params: Mapping[str, Any], scope: Scope) -> Pulled:
        ctx.service(RescuePool).release(ctx, _text(volume, scope))
        return {}
        yield  # pragma: no cover

    return Native("slot released", into="released", local=local, asl=None, why=_POOL,
                  counterpart=counterpart)


def slot(params: Mapping[str, Any], volume: Expr, az: Expr, image_id: Expr) -> Native:
    """``vars.slot``: the rescue instance (``instance_id``) and ``device`` the volume was
    attached at. Locally a free slot in the AZ's pool (a rescue instance launched, or
    waited for, when none has one); on Step Functions the target's own rescue instance."""

    def local(ctx: StepContext, params: Mapping[str, Any], scope: Scope) -> Pulled:
        config = config_of(params, _text(image_id, scope))
        found: Slot = yield from _attach(ctx, config, _text(volume, scope), _text(az, scope))
        return {"instance_id": found.rescue.instance_id, "device": found.device}

    return Native("a slot on a rescue instance", into="slot", local=local, asl=None,
                  why=_POOL, counterpart=_own_rescue(params, volume, az, image_id))


def _attach(ctx: StepContext, config: RescueConfig, volume_id: str, az: str) -> Pulled:
    """A slot of the pool, and the AttachVolume to it (another slot when AWS says the
    device is taken by a volume the pool did not know of)."""
    pool = ctx.service(RescuePool)
    for attempt in range(1, _DEVICE_TRIES + 1):
        found: Slot = yield from pool.acquire(ctx, config, az, volume_id)
        try:
            yield Call("ec2", "AttachVolume",
                       {"VolumeId": volume_id, "InstanceId": found.rescue.instance_id,
                        "Device": found.device},
                       note=f"attach {volume_id} to rescue {found.rescue.instance_id}")
            return found
        except GeneratorExit:  # the step was cancelled: let another volume have the slot
            pool.release(ctx, volume_id)
            raise
        except AwsError as exc:
            if exc.code in ATTACH_CONFLICTS and ctx.reply_lost("AttachVolume"):
                # Our own lost AttachVolume may hold it (the slot stays reserved).
                raise conflict(ctx, exc, volume_id) from exc
            taken = exc.code == "InvalidParameterValue" and "already in use" in exc.message
            if taken:
                pool.mark_taken(ctx, found, volume_id)
            else:
                pool.release(ctx, volume_id)
            if not taken or attempt == _DEVICE_TRIES:
                raise StepFailed(f"attaching {volume_id} to rescue instance "
                                 f"{found.rescue.instance_id} at {found.device} failed: "
                                 f"{exc}") from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _own_rescue(params: Mapping[str, Any], volume: Expr, az: Expr, image_id: Expr) -> Seq:
    """Step Functions: the target's rescue instance (one an earlier pass launched, or a new
    one), usable, and the volume attached to it at the first data slot."""
    record, region = Var("vars.rescue_image"), Var("target.region")
    own, subnet = Var("vars.own.list").at(0), Var("vars.subnets.list").at(0)
    instance, device = Var("vars.slot_id"), Var("vars.slot_device")
    tags = [*rescue_tags(RUN_ID, Fmt("remediate-rescue-", TARGET_ID)),
            {"Key": TARGET_TAG, "Value": TARGET_ID}]
    launch = {**instance_request(tags, config_of(params, ""),
                                 {"SubnetId": Var("vars.subnet.SubnetId")}),
              "ImageId": image_id,
              # The same across the call's own retries (a lost reply launches no second
              # instance), new for a later pass (AWS keeps answering a token with its
              # instance, terminated or not, for a day or more).
              "ClientToken": token(RUN_ID, TARGET_ID, Var("run.step"))}
    subnets: list[dict[str, Any]]
    if params.get("subnet_ids"):
        subnets = [{"Name": "subnet-id", "Values": Var("params.subnet_ids")},
                   {"Name": "availability-zone", "Values": [az]}]
        none = Fmt("none of subnet_ids (", ", ".join(map(str, params["subnet_ids"])),
                   ") is in ", az, ": add a subnet in ", az)
    else:
        subnets = [{"Name": "availability-zone", "Values": [az]},
                   {"Name": "default-for-az", "Values": ["true"]}]
        none = Fmt("no default subnet in ", az, ": set subnet_ids to a subnet in ", az,
                   " from which the SSM endpoints are reachable")
    return (
        Read("rescue_image", "image", image_id),
        If(((Exists(record, False), (Fail(Fmt("rescue image ", image_id, " is not found in ",
                                              region)),)),
            (Not(Eq(record.State, "available")), (Fail(Fmt(
                "rescue image ", image_id, " is ", record.State, " in ", region)),)))),
        If(((Eq(record.Platform, "windows"), (Set("slot_device", SLOTS[0]),)),),
           orelse=(Set("slot_device", f"/dev/{SLOTS[0]}"),)),
        Get("own", "ec2", "DescribeInstances", {"Filters": tag_filters(
            RUN_ID, ("pending", "running"), {"Name": f"tag:{TARGET_TAG}", "Values": [TARGET_ID]})},
            pick={"list": "Reservations[*]"}),
        If(((Exists(own), (Set("own_rec", own.Instances.at(0)),
                           Set("slot_id", Var("vars.own_rec.InstanceId")))),),
           orelse=(Get("subnets", "ec2", "DescribeSubnets", {"Filters": subnets},
                       pick={"list": "Subnets"}),
                   If(((Exists(subnet, False), (Fail(none),)),)),
                   Set("subnet", subnet),
                   Send("ec2", "RunInstances", launch, into="launched", pick={"i": "Instances[0]"},
                        note=Fmt("launch a rescue instance for ", TARGET_ID)),
                   Set("slot_id", Var("vars.launched.i.InstanceId")))),
        *usable(instance, Var("params.ready_timeout")),
        Send("ec2", "AttachVolume", {"VolumeId": volume, "InstanceId": instance, "Device": device},
             note=Fmt("attach ", volume, " to rescue ", instance)),
        Set("slot", {"instance_id": instance, "device": device}),
    )


# ---- Step Functions: the end of an iteration --------------------------------------------


def _held(rescue: Var) -> Get:
    """The volumes at a data slot of ``rescue`` (never its own root)."""
    return Get("held", "ec2", "DescribeVolumes", {"Filters": [
        {"Name": "attachment.instance-id", "Values": [rescue.InstanceId]},
        {"Name": "attachment.device", "Values": list(SLOT_DEVICES)}]}, pick={"list": "Volumes"})


def _rescues() -> Get:
    return Get("rescues", "ec2", "DescribeInstances", {"Filters": tag_filters(
        RUN_ID, ("pending", "running", "stopping", "stopped"),
        {"Name": f"tag:{TARGET_TAG}", "Values": [TARGET_ID]})}, pick={"list": "Reservations[*]"})


def iteration_cleanup() -> Program:
    """What each iteration runs at its end, whatever happened (the counterpart of
    :meth:`RescuePool.finish`): every rescue instance of this target is terminated, each
    volume on it taken off first and left ``available``. A volume that will not come off
    fails the cleanup (the iteration then fails with remediate.CleanupFailed) and its
    rescue instance is kept: no customer volume is ever terminated with one."""
    rescue, volume = Var("vars.rescue"), Var("vars.vol")
    first, held = Var("vars.rescues.list").at(0), Var("vars.held.list").at(0)
    return program(
        _rescues(),
        Loop(Exists(first), (
            Set("rescue", first.Instances.at(0)),
            _held(rescue),
            Loop(Exists(held), (
                Set("vol", held),
                # Never forced: a forced detach can corrupt the file system just repaired.
                Send("ec2", "DetachVolume", {"VolumeId": volume.VolumeId,
                                             "InstanceId": rescue.InstanceId},
                     note=Fmt("detach ", volume.VolumeId, " from rescue instance ",
                              rescue.InstanceId),
                     on_error=(OnError(tuple(sorted(DETACH_CONFLICTS)), ()),)),
                Await("freed", "volume", volume.VolumeId, until=Eq(IT.State, "available"),
                      timeout=600.0, what=Fmt("volume ", volume.VolumeId, " available")),
                _held(rescue))),
            Send("ec2", "TerminateInstances", {"InstanceIds": [rescue.InstanceId]},
                 batch_key="InstanceIds", note="terminate the target's rescue instance"),
            _rescues())),
        Done())



