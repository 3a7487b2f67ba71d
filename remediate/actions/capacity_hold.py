"""Holding a target's capacity across its stop and start (``ec2.stop hold_capacity``).

Stopping thousands of instances in an AZ during a regional event risks
InsufficientInstanceCapacity when they start again. Before the stop, an On-Demand
Capacity Reservation for one instance of the target's type, platform, AZ and tenancy
is created, ``targeted`` so that nothing else in the account can use it while the
target is stopped; if AWS refuses it, the step fails before the stop, declaring it left
the target as it was (``UNTOUCHED``): the target ends ``refused`` with the reason, and
no rollback runs unless an earlier step changed it. So does a target whose own
preference is ``none`` (it would never start in the hold); one that targets a
reservation of its own (or a group) is stopped without a hold: it starts in its own.
Just before the start the reservation is made ``open``, so the target (whose own
preference is ``open``, the default) lands in it without any of its own settings ever
changing; once it runs, the reservation is cancelled.

Why not point the instance at the reservation (ModifyInstanceCapacityReservation-
Attributes)? A cancelled reservation would then keep the instance from launching
until its settings were changed again, which AWS allows only while it is stopped
("Modify the Capacity Reservation settings of your instance",
docs.aws.amazon.com/AWSEC2/latest/UserGuide/capacity-reservations-modify-instance.html;
"After you cancel a Capacity Reservation, instances that target it can no longer
launch", "Cancel a Capacity Reservation", docs.aws.amazon.com/AWSEC2/latest/UserGuide/
capacity-reservations-release.html). Pointing it at a Capacity Reservation *group*
instead would leave no such trap (an instance targeting a group with no matching
reservation "run[s] using On-Demand capacity", "Capacity Reservation groups",
docs.aws.amazon.com/AWSEC2/latest/UserGuide/create-cr-group.html) but would change the
customer's instance for good: it would no longer use their own ``open`` reservations.

Why one reservation per target, not one per (type, platform, AZ, tenancy) sized to the
targets stopped together? Without pointing instances at it, a shared reservation can
only be used by being ``open``, and an ``open`` one offers all its free slots to every
matching launch in the account until the group's last start; cutting its count after
each start races the group's other starts. A sized reservation is also all or nothing:
an AZ with room for 5 of 10 would refuse all 10, where per target 5 are held and
repaired and 5 are refused, untouched. Nor would it save calls: to give each start a
reservation of its own, each would split one off the group's ("Split off capacity from
an existing Capacity Reservation", docs.aws.amazon.com/AWSEC2/latest/UserGuide/
capacity-reservations-split.html), a call where the create was. So: one per target,
targeted while it is stopped, open only for its start.

Each reservation is tagged with the run and the instance, so it is always found again:
by the start (any step that starts the instance, a rollback's included), and by
:class:`CapacityHolds`, the run service that cancels whatever this run still holds at
the end of every run (after failures and Ctrl-C too, and in ``remediate resume``).
One CreateCapacityReservation, one ModifyCapacityReservation and one
CancelCapacityReservation per target stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from remediate.actions.contract import ActionRun, RunService, StepContext
from remediate.actions.program import (
    ANY_ERROR,
    TARGET_ID,
    All,
    Done,
    Eq,
    Exists,
    Expr,
    Fail,
    Fmt,
    If,
    Native,
    OnError,
    Program,
    Read,
    Retried,
    Send,
    Seq,
    Set,
    Var,
    program,
    token,
)
from remediate.actions.requests import UNTOUCHED, AwsError, Call
from remediate.actions.rescue_launch import ROLE_TAG, RUN_TAG, Pulled
from remediate.aws.resources import HOLD_TAG

ROLE: Final = "capacity-hold"

REFUSED: Final = ("InsufficientInstanceCapacity", "InsufficientCapacity",
                  "InstanceLimitExceeded", "VcpuLimitExceeded", "ReservationCapacityExceeded")
"""CreateCapacityReservation's answers for no capacity, or a quota reached (EC2 API
reference, "Error codes": docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html;
CreateCapacityReservation: "could fail if Amazon EC2 does not have sufficient capacity
... could also fail if the requested quantity exceeds your On-Demand Instance limit")."""
GONE: Final = ("InvalidCapacityReservationId.NotFound", "IncorrectState")
"""Opening or cancelling a reservation already cancelled (a lost reply, the end-of-run
cleanup): nothing left to open or release."""


def _request(instance_id: Expr, instance_type: Expr, platform: Expr, zone: Expr,
             tenancy: Expr, run_id: Expr) -> dict[str, Expr]:
    """CreateCapacityReservation's request for one instance (the hold and its probe)."""
    return {
        "InstanceType": instance_type,
        "InstancePlatform": platform,
        "AvailabilityZone": zone,
        "Tenancy": tenancy,
        "InstanceCount": 1,
        # Only instances that target it by id may use it: none, while the target is
        # stopped ("Instance matching criteria", docs.aws.amazon.com/AWSEC2/latest/
        # UserGuide/cr-matching-criteria.html).
        "InstanceMatchCriteria": "targeted",
        "EndDateType": "unlimited",
        "TagSpecifications": [{"ResourceType": "capacity-reservation", "Tags": [
            {"Key": RUN_TAG, "Value": run_id}, {"Key": ROLE_TAG, "Value": ROLE},
            {"Key": HOLD_TAG, "Value": instance_id}]}],
    }


def probe_request(run_id: str, facts: Mapping[str, Any]) -> dict[str, Any] | None:
    """The hold's request for the dry run's permission probe (``DryRun`` is added by the
    probe), from the target's facts: its tags are the ones the IAM policy requires
    (None: inspection did not find the instance's type or AZ). The platform is the
    inspection's Windows-or-not and the tenancy ``default``: what the policy judges is
    the tags and the action, not these."""
    if not facts.get("instance_type") or not facts.get("availability_zone"):
        return None
    platform = "Windows" if facts.get("platform") == "windows" else "Linux/UNIX"
    return _request(facts["id"], facts["instance_type"], platform,
                    facts["availability_zone"], "default", run_id)


def hold(instance: Var) -> Seq:
    """Before the stop of the instance read at ``instance``: its capacity held by a
    targeted reservation, or the step fails with the reason and the
    instance untouched. A step run again finds the reservation it made."""
    platform, tenancy = Var("vars.hold_platform"), instance.Placement.Tenancy
    request: dict[str, Expr] = {
        **_request(instance.InstanceId, instance.InstanceType, platform,
                   instance.Placement.AvailabilityZone, Var("vars.hold_tenancy"),
                   Var("run.id")),
        # A lost reply resent with the same token makes no second reservation
        # (CreateCapacityReservation's ClientToken, "Ensuring idempotency in Amazon EC2
        # API requests", docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html).
        "ClientToken": token(Var("run.id"), instance.InstanceId, "capacity-hold"),
    }
    error = Var("vars.hold_error")
    refused = Fail(Fmt(
        "could not hold capacity for ", instance.InstanceId, " (", instance.InstanceType,
        ", ", platform, ", ", instance.Placement.AvailabilityZone, "), so it was not "
        "stopped and is as it was: run again later, or set hold_capacity: false to stop "
        "it without a reservation (it may then not start again while the AZ has no "
        "capacity). AWS said: ", error.Cause), UNTOUCHED)
    create = (
        _used(),
        *_platform(instance),
        If(((Eq(tenancy, "host"), (Fail(Fmt(
            "could not hold capacity for ", instance.InstanceId, ": it runs on a Dedicated "
            "Host, which a Capacity Reservation cannot hold. It was not stopped; set "
            "hold_capacity: false for it (its host keeps its capacity)."), UNTOUCHED),)),
            (Eq(tenancy, "dedicated"), (Set("hold_tenancy", "dedicated"),))),
           orelse=(Set("hold_tenancy", "default"),)),
        Send("ec2", "CreateCapacityReservation", request,
             note=Fmt("hold capacity for ", instance.InstanceId),
             on_error=(OnError(REFUSED, (refused,), into="hold_error"),
                       OnError((ANY_ERROR,), (refused,), into="hold_error"))))
    spec = instance.CapacityReservationSpecification
    never_in_one = Fail(Fmt(
        "could not hold capacity for ", instance.InstanceId, ": its Capacity Reservation "
        "preference is none, so it starts only in On-Demand capacity, never in a "
        "reservation, and remediate does not change an instance's own settings. It was "
        "not stopped; set hold_capacity: false to stop it without a hold, or set its "
        "preference to open (aws ec2 modify-instance-capacity-reservation-attributes, "
        "while it is stopped)."), UNTOUCHED)
    return (
        If(((Retried("CreateCapacityReservation"),
             (Read("held", "capacity-hold", instance.InstanceId),)),),
           orelse=(Set("held", None),)),
        If(((Exists(Var("vars.held"), False), (
            # What the instance's own settings let it start in ("Modify the Capacity
            # Reservation settings of your instance", cited above): one that targets a
            # reservation or a group of them starts there, its capacity the owner's
            # already; with preference none it never uses a reservation, so a hold
            # would not be used by its start.
            If(((Exists(spec.CapacityReservationTarget), (Set("hold_own", True),)),
                (Eq(spec.CapacityReservationPreference, "none"), (never_in_one,))),
               orelse=create),)),)))


def _platform(instance: Var) -> Seq:
    """``vars.hold_platform``: the instance's platform as Capacity Reservations name it.
    DescribeInstances' PlatformDetails ("Windows", "Linux/UNIX", "Red Hat Enterprise
    Linux", "Windows with SQL Server Standard"...) uses the same names ("AMI billing
    information fields", docs.aws.amazon.com/AWSEC2/latest/UserGuide/
    billing-info-fields.html); without it, ``Platform`` says only Windows or not."""
    return (If(((Exists(instance.PlatformDetails), (Set("hold_platform",
                                                        instance.PlatformDetails),)),
                (Eq(instance.Platform, "windows"), (Set("hold_platform", "Windows"),))),
               orelse=(Set("hold_platform", "Linux/UNIX"),)),)


def opened(into: str, instance_id: Expr) -> Seq:
    """Just before a start: the instance's held reservation, if any, at
    ``vars.<into>_hold``, made ``open`` so the instance (preference ``open``) starts in
    it. AWS changes the eligibility only of an idle reservation: the instance is stopped
    ("Modify an active Capacity Reservation", docs.aws.amazon.com/AWSEC2/latest/UserGuide/
    capacity-reservations-modify.html)."""
    held = Var(f"vars.{into}_hold")
    return (Read(f"{into}_hold", "capacity-hold", instance_id),
            If(((All(Exists(held), Eq(held.InstanceMatchCriteria, "targeted")), (
                Send("ec2", "ModifyCapacityReservation", {
                    "CapacityReservationId": held.CapacityReservationId,
                    "InstanceMatchCriteria": "open"},
                    note=Fmt("open the capacity held for ", instance_id),
                    # Cancelled meanwhile (the end of a run): the start goes on without.
                    on_error=(OnError(GONE, ()),)),)),)))


def released(into: str, instance_id: Expr) -> Seq:
    """Once the instance runs: the reservation :func:`opened` found, cancelled. The
    instance keeps running ("Cancel a Capacity Reservation", docs.aws.amazon.com/AWSEC2/
    latest/UserGuide/capacity-reservations-release.html: instances running in it keep
    running, outside it)."""
    held = Var(f"vars.{into}_hold")
    return (If(((Exists(held), (
        Send("ec2", "CancelCapacityReservation", {
            "CapacityReservationId": held.CapacityReservationId},
            note=Fmt("release the capacity held for ", instance_id),
            on_error=(OnError(GONE, ()),)),)),)),)


def iteration_cleanup() -> Program:
    """What a Step Functions iteration that ran ``ec2.stop`` runs at its end, whatever
    happened (the counterpart of :meth:`CapacityHolds.finish`): the target's hold, if
    one is left, cancelled. One DescribeCapacityReservations per iteration."""
    return program(Read("end_hold", "capacity-hold", TARGET_ID),
                   *released("end", TARGET_ID), Done())


def _used() -> Native:
    """Locally: the run's :class:`CapacityHolds` in this account and Region, journaled
    before the first reservation is made, so the end of the run (or ``resume``) cancels
    what is left. On Step Functions the iteration holds nothing run-wide."""

    def local(ctx: StepContext, params: Mapping[str, Any], scope: Any) -> Pulled:
        ctx.service(CapacityHolds)
        return {}
        yield  # pragma: no cover

    return Native("capacity holds", into="holds", local=local, asl=None,
                  why="the run-wide cleanup of reservations is the local engine's",
                  counterpart=())


def tag_filters(run_id: str) -> list[dict[str, Any]]:
    """DescribeCapacityReservations filters for this run's active holds."""
    return [{"Name": f"tag:{RUN_TAG}", "Values": [run_id]},
            {"Name": f"tag:{ROLE_TAG}", "Values": [ROLE]},
            {"Name": "state", "Values": ["active"]}]


class CapacityHolds(RunService):
    """The end of every run: each reservation this run still holds is cancelled (a
    target that failed, a start that never came, a reply lost). A target left stopped
    then holds no capacity: its reason says so, and starting it is the operator's."""

    cleanup = "cancelling the held capacity reservations"

    def finish(self, ctx: StepContext) -> ActionRun:
        found: list[str] = []
        request: dict[str, Any] = {"Filters": tag_filters(self.run_id)}
        while True:
            response = yield Call("ec2", "DescribeCapacityReservations", request,
                                  note="find this run's capacity holds")
            found.extend(r["CapacityReservationId"]
                         for r in response.get("CapacityReservations", []))
            next_token = response.get("NextToken")
            if not next_token:
                break
            request = {**request, "NextToken": next_token}
        for reservation_id in found:
            try:
                yield Call("ec2", "CancelCapacityReservation",
                           {"CapacityReservationId": reservation_id},
                           note=f"release capacity reservation {reservation_id}")
            except AwsError as exc:
                if exc.code not in GONE:  # else a start released it meanwhile
                    raise
        return {"cancelled": found}
