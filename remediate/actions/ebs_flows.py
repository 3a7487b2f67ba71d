"""Program pieces for EBS volumes and snapshots (:mod:`remediate.actions.program`): read a
volume, wait out an attach or detach in flight, detach it from wherever it is, attach it,
and wait for a volume or snapshot state.

A volume's attachment is copied out of its record first (:func:`attachment`): root
volumes are never multi-attach, so the first attachment is the one, and a path ending
in ``[0].Field`` reads differently on moto's Step Functions (see
:mod:`remediate.export.asl`).
"""

from __future__ import annotations

from typing import Final

from remediate.actions.lost_replies import ATTACH_CONFLICTS, DETACH_CONFLICTS
from remediate.actions.program import (
    All,
    AnyOf,
    Await,
    Eq,
    Exists,
    Expr,
    Fail,
    Find,
    Fmt,
    If,
    In,
    Not,
    Pred,
    Read,
    Same,
    Send,
    Seq,
    Set,
    Var,
)
from remediate.aws.resources import MISSING

IT: Final = Var("it")
# A volume whose attachment is settling is waited for; these states are final.
SETTLING: Final = ("attaching", "detaching")
VOLUME_LOST: Final = (MISSING, "deleting", "deleted", "error")
SNAPSHOT_LOST: Final = ("error", MISSING)


def state_wait(into: str, resource: str, resource_id: Expr, state: str,
               lost: tuple[str, ...], timeout: float) -> Await:
    """Until the ``State`` of ``resource`` is ``state``; one of ``lost`` (``missing``: AWS
    no longer knows it) fails the step ("volume is deleting"), like
    :func:`remediate.actions.requests.wait_state`."""
    fail: list[tuple[Pred, Expr]] = []
    if MISSING in lost:
        fail.append((Exists(IT, False), f"{resource} is {MISSING}"))
    final = tuple(s for s in lost if s != MISSING)
    if final:
        fail.append((In(IT.State, *final), Fmt(f"{resource} is ", IT.State)))
    return Await(into, resource, resource_id, until=Eq(IT.State, state), fail=tuple(fail),
                 timeout=timeout, what=Fmt(f"{resource} ", resource_id, f" {state}"))


def read_volume(into: str, volume_id: Expr, what: str = "volume") -> Seq:
    """The volume's record at ``vars.<into>``; the step fails if it does not exist."""
    return (Read(into, "volume", volume_id),
            If(((Exists(Var(f"vars.{into}"), False),
                 (Fail(Fmt(f"{what} ", volume_id, " not found")),)),)))


def attachment(into: str, volume: Var) -> Set:
    """The volume's attachment at ``vars.<into>`` (null when it has none)."""
    return Set(into, volume.Attachments.at(0))


def attached_to(att: Var, instance_id: Var, device: Var) -> Pred:
    """The attachment ``att`` is done, to ``instance_id`` at ``device``."""
    return All(Same(att.InstanceId, instance_id), Same(att.Device, device),
               Eq(att.State, "attached"))


def settled(into: str, volume_id: Expr, timeout: float) -> Await:
    """Until no attach or detach of the volume is in flight (AWS refuses to act on a volume
    mid-change); a volume that no longer exists is settled too."""
    return Await(into, "volume", volume_id,
                 until=Not(In(IT.Attachments.at(0).State, *SETTLING)), timeout=timeout,
                 what=Fmt(volume_id, " attach/detach finished"))


def available(into: str, volume_id: Expr, timeout: float) -> Await:
    return state_wait(into, "volume", volume_id, "available", VOLUME_LOST, timeout)


def attached(into: str, volume_id: Expr, instance_id: Var, device: Var,
             timeout: float) -> Await:
    """Until the volume is attached to ``instance_id`` at ``device``; fails if it ends up
    available or on another instance instead."""
    att = IT.Attachments.at(0)
    return Await(into, "volume", volume_id, until=attached_to(att, instance_id, device),
                 fail=((Exists(IT, False), "the volume no longer exists"),
                       (AnyOf(Eq(IT.State, "available"),
                              All(Exists(att), Not(Same(att.InstanceId, instance_id)))),
                        Fmt("the volume went ", IT.State, " instead of attaching to ",
                            instance_id))),
                 timeout=timeout, what=Fmt(volume_id, " attached to ", instance_id, " at ",
                                           device))


def detach(into: str, volume_id: Var, att: Var, timeout: float) -> Seq:
    """Detach the volume from whatever holds it (``att``, its attachment; nothing to send
    when it is detaching already) and wait until it is available (at ``vars.<into>``).
    An error that a lost DetachVolume of this step explains reconciles
    (:data:`~remediate.actions.lost_replies.DETACH_CONFLICTS`)."""
    return (If(((Not(Eq(att.State, "detaching")), (Send(
        "ec2", "DetachVolume",
        {"VolumeId": volume_id, "InstanceId": att.InstanceId, "Device": att.Device},
        note=Fmt("detach ", volume_id, " from ", att.InstanceId, " ", att.Device),
        subject=volume_id, reconcile_on=tuple(sorted(DETACH_CONFLICTS))),)),)),
        available(into, volume_id, timeout))


def attach(volume_id: Var, instance_id: Expr, device: Var) -> Send:
    """AttachVolume; an error that a lost AttachVolume of this step explains reconciles
    (:data:`~remediate.actions.lost_replies.ATTACH_CONFLICTS`)."""
    return Send("ec2", "AttachVolume",
                {"VolumeId": volume_id, "InstanceId": instance_id, "Device": device},
                note=Fmt("attach ", volume_id, " to ", instance_id, " at ", device),
                subject=volume_id, reconcile_on=tuple(sorted(ATTACH_CONFLICTS)))


def device_mapping(into: str, instance: Var, device: Expr) -> Find:
    """The instance's block device at ``device`` (``DeviceName``, ``Ebs.VolumeId``,
    ``Ebs.Status``, ``Ebs.DeleteOnTermination``) at ``vars.<into>``, or null."""
    return Find(into, instance.BlockDeviceMappings, "DeviceName", device)
