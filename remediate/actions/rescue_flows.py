"""Program pieces of the rescue actions (:mod:`remediate.actions.program`) that are the
same on both engines: which volume, waits on its attachment, the same-AMI guard, and a
rescue instance becoming usable.

The values the rescue programs share: ``vars.volume`` (the volume's record),
``vars.att`` (its first attachment, copied out of the record), ``vars.holder`` (the
rescue instance of this run it is on: ``instance_id``, null when none; ``platform``,
"windows" or not; see :mod:`remediate.actions.rescue_natives`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from remediate.actions.program import (
    TARGET_ID,
    Accepted,
    All,
    Await,
    Eq,
    Exists,
    Expr,
    Fail,
    Fmt,
    If,
    In,
    Not,
    Pred,
    Read,
    Same,
    Seq,
    Set,
    Var,
)
from remediate.actions.rescue_image import parameter_of

SAME_AMI: Final = "same-ami-rescue"
IT: Final = Var("it")
VOLUME: Final = Var("vars.volume")
ATT: Final = Var("vars.att")
HOLDER: Final = Var("vars.holder")
# A rescue instance in one of these will never get its SSM agent Online.
NOT_READY: Final = ("shutting-down", "terminated", "stopping", "stopped")


def volume_id(params: Mapping[str, Any]) -> Expr:
    """The volume a step works on: its ``volume_id``, else the target's root volume."""
    given = params.get("volume_id")
    return Var("params.volume_id") if given not in (None, "") else Var("target.root_volume_id")


def named(volume: Expr) -> Seq:
    """Fail the step when there is no volume to work on."""
    return (If(((Exists(volume, False), (Fail(Fmt(
        "no volume to work on: ", TARGET_ID, " has no root_volume_id fact and volume_id is not "
        "set")),)),)),)


def read_volume(volume: Expr) -> Seq:
    """``vars.volume`` (the step fails when it does not exist) and ``vars.att``."""
    return (Read("volume", "volume", volume),
            If(((Exists(VOLUME, False), (Fail(Fmt("volume ", volume, " does not exist")),)),)),
            # Copied first: a path ending in "[0].InstanceId" reads differently on moto.
            Set("att", VOLUME.Attachments.at(0)))


def attached_to(instance: Expr, record: Var = IT) -> Pred:
    """The volume ``record`` is attached (not attaching) to ``instance``."""
    attachment = record.Attachments.at(0)
    return All(Same(attachment.InstanceId, instance), Eq(attachment.State, "attached"))


def wait_attached(into: str, volume: Expr, instance: Expr, timeout: Expr) -> Await:
    return Await(into, "volume", volume, until=attached_to(instance), timeout=timeout,
                 what=Fmt(volume, " attached to ", instance))


def wait_available(into: str, volume: Expr, timeout: Expr) -> Await:
    return Await(into, "volume", volume, until=Eq(IT.State, "available"), timeout=timeout,
                 what=Fmt("volume ", volume, " available"))


def rescue_image(params: Mapping[str, Any]) -> tuple[bool, Expr, Expr]:
    """(whether ``rescue_image_id`` is ``resolve:ssm:`` (resolved into ``vars.image.id``),
    the AMI id, that id as a message shows it: "ami-0abc (resolve:ssm:/x)")."""
    image = params["rescue_image_id"]
    if isinstance(image, str) and parameter_of(image) is not None:
        return True, Var("vars.image.id"), Fmt(Var("vars.image.id"), f" ({image})")
    return False, Var("params.rescue_image_id"), Var("params.rescue_image_id")


def same_image(image_id: Expr) -> Pred:
    """The rescue AMI is the one the target was launched from, and the operator did not
    accept that (``--accept same-ami-rescue``)."""
    return All(Not(Accepted(SAME_AMI)), Same(Var("target.image_id"), image_id))


def same_image_refused(shown: Expr) -> Fail:
    return Fail(Fmt(
        "rescue_image_id ", shown, " is the AMI ", TARGET_ID, " was launched from: its disk "
        "would collide with the rescue instance's (disk signature) and onlining it can leave "
        "it unbootable; use a different Windows version, or --accept same-ami-rescue"))


def usable(instance: Expr, timeout: Expr) -> Seq:
    """Wait until the rescue instance runs with its SSM agent Online (a Step Functions
    iteration's own rescue instance; the local pool waits for its instances itself).
    An instance not listed yet (just launched) is waited for, not failed."""
    state = IT.State.Name
    return (Await("rescue_running", "instance", instance, until=Eq(state, "running"),
                  timeout=timeout, what=Fmt("rescue instance ", instance, " running"),
                  fail=((In(state, *NOT_READY), Fmt("rescue instance ", instance, " is ",
                                                   state, ": it is not usable")),)),
            Await("rescue_online", "ssm-agent", instance, until=Eq(IT.PingStatus, "Online"),
                  timeout=timeout, what=Fmt("SSM agent of rescue instance ", instance,
                                            " Online")))
