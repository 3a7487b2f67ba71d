"""On-Demand Capacity Reservation APIs (moto 5.2.5 has none), on the capacity model
of :mod:`remediate.sandbox.capacity`.

CreateCapacityReservation, ModifyCapacityReservation, CancelCapacityReservation,
DescribeCapacityReservations, ModifyInstanceCapacityReservationAttributes, and each
instance's ``CapacityReservationSpecification``/``CapacityReservationId`` in
DescribeInstances. Rules from the EC2 API reference of each operation and the EC2 User
Guide's "Capacity Reservations" pages (docs.aws.amazon.com/AWSEC2/latest/UserGuide/
capacity-reservations-create.html, -release.html, -modify-instance.html):

- creating one takes capacity at once, and fails with InsufficientInstanceCapacity
  when the AZ has none ("Create a Capacity Reservation"); a new reservation is
  ``active`` at once here (AWS may pass through ``pending`` briefly);
- cancelling releases the capacity at once; instances running in it keep running
  outside it; stopped instances that target it can no longer launch;
- DescribeInstances shows each instance's ``PlatformDetails`` ("Windows", "Linux/UNIX");
- an instance's settings can be modified only while it is stopped
  (ModifyInstanceCapacityReservationAttributes: "for a stopped instance").
"""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.models.instances import Instance
from moto.ec2.responses import EC2Response
from moto.moto_api._internal import mock_random

from remediate.sandbox import capacity, errors
from remediate.sandbox.patcher import Patcher
from remediate.sandbox.state import current, maybe_current

_FILTERS = {
    "instance-type": "InstanceType",
    "availability-zone": "AvailabilityZone",
    "state": "State",
    "tenancy": "Tenancy",
    "instance-platform": "InstancePlatform",
    "instance-match-criteria": "InstanceMatchCriteria",
    "owner-id": "OwnerId",
}


def _reservation(backend: Any, reservation_id: str) -> capacity.Reservation:
    found = current().capacity.reservations.get(reservation_id)
    if (found is None or found.OwnerId != backend.account_id
            or found.Region != backend.region_name):
        raise errors.reservation_not_found(reservation_id)
    return found


def _ledger(backend: Any) -> capacity.Ledger:
    world = current()
    return capacity.Ledger(world.capacity, world.facts, backend)


def _wanted(reservation: capacity.Reservation, filters: dict[str, list[str]]) -> bool:
    tags = {t["Key"]: t["Value"] for t in reservation.Tags}
    for name, values in filters.items():
        if name.startswith("tag:"):
            if tags.get(name[4:]) not in values:
                return False
        elif name in _FILTERS and str(getattr(reservation, _FILTERS[name])) not in values:
            return False
    return True


def create_capacity_reservation(self: Any) -> ActionResult:
    backend = self.ec2_backend
    world = current()
    instance_type = self._get_param("InstanceType")
    zone = self._get_param("AvailabilityZone")
    count = int(self._get_param("InstanceCount"))
    self.error_on_dryrun()
    _ledger(backend).take(instance_type, zone, count)
    tags = self._parse_tag_specification().get("capacity-reservation", {})
    now = world.clock.wall()
    reservation = capacity.Reservation(
        CapacityReservationId=f"cr-{mock_random.get_random_hex(17)}",
        OwnerId=backend.account_id,
        Region=backend.region_name,
        InstanceType=instance_type,
        InstancePlatform=self._get_param("InstancePlatform"),
        AvailabilityZone=zone,
        Tenancy=self._get_param("Tenancy") or "default",
        TotalInstanceCount=count,
        InstanceMatchCriteria=self._get_param("InstanceMatchCriteria") or "open",
        CreateDate=now,
        StartDate=now,
        EndDateType=self._get_param("EndDateType") or "unlimited",
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
    )
    world.capacity.reservations[reservation.CapacityReservationId] = reservation
    world.capacity.created += 1
    return ActionResult({"CapacityReservation": reservation.answer(count)})


def modify_capacity_reservation(self: Any) -> ActionResult:
    backend = self.ec2_backend
    reservation = _reservation(backend, self._get_param("CapacityReservationId"))
    self.error_on_dryrun()
    if reservation.State != "active":
        raise errors.reservation_not_active(reservation.CapacityReservationId,
                                            reservation.State)
    count = self._get_param("InstanceCount")
    if count is not None:
        ledger = _ledger(backend)
        used = ledger.used[reservation.CapacityReservationId]
        wanted = int(count)
        if wanted < used:
            raise errors.reservation_below_use(reservation.CapacityReservationId, used)
        if wanted > reservation.TotalInstanceCount:
            ledger.take(reservation.InstanceType, reservation.AvailabilityZone,
                        wanted - reservation.TotalInstanceCount)
        reservation.TotalInstanceCount = wanted
    criteria = self._get_param("InstanceMatchCriteria")
    if criteria:
        reservation.InstanceMatchCriteria = criteria
    return ActionResult({"Return": True})


def cancel_capacity_reservation(self: Any) -> ActionResult:
    reservation = _reservation(self.ec2_backend, self._get_param("CapacityReservationId"))
    self.error_on_dryrun()
    if reservation.State != "active":
        raise errors.reservation_not_active(reservation.CapacityReservationId,
                                            reservation.State)
    reservation.State = "cancelled"
    return ActionResult({"Return": True})


def describe_capacity_reservations(self: Any) -> ActionResult:
    backend = self.ec2_backend
    self.error_on_dryrun()
    ids = self._get_param("CapacityReservationIds", [])
    for reservation_id in ids:
        _reservation(backend, reservation_id)
    filters = self._filters_from_querystring()
    ledger = _ledger(backend)
    found = [r.answer(ledger.available(r.CapacityReservationId))
             for r in current().capacity.reservations.values()
             if r.OwnerId == backend.account_id and r.Region == backend.region_name
             and (not ids or r.CapacityReservationId in ids) and _wanted(r, filters)]
    return ActionResult({"CapacityReservations": found})


def modify_instance_capacity_reservation_attributes(self: Any) -> ActionResult:
    backend = self.ec2_backend
    world = current()
    instance = backend.get_instance(self._get_param("InstanceId"))
    spec = self._get_param("CapacityReservationSpecification") or {}
    target = (spec.get("CapacityReservationTarget") or {}).get("CapacityReservationId")
    if target is not None:
        _reservation(backend, target)
    self.error_on_dryrun()
    if instance.state != "stopped":
        raise errors.instance_not_stopped_for_reservation(instance.id)
    facts = world.facts(instance.id)
    facts.capacity_target = target
    facts.capacity_preference = spec.get("CapacityReservationPreference") or "open"
    return ActionResult({"Return": True})


def _instance_specification(self: Any) -> dict[str, Any]:
    world = maybe_current()
    if world is None:
        return {"CapacityReservationPreference": "open"}
    facts = world.facts(self.id)
    if facts.capacity_target is not None:
        return {"CapacityReservationTarget": {"CapacityReservationId": facts.capacity_target}}
    return {"CapacityReservationPreference": facts.capacity_preference}


def _instance_reservation(self: Any) -> str | None:
    world = maybe_current()
    if world is None or self.state not in capacity.HOLDING_STATES:
        return None
    return world.facts(self.id).capacity_reservation


def install(patcher: Patcher) -> None:
    for handler in (create_capacity_reservation, modify_capacity_reservation,
                    cancel_capacity_reservation, describe_capacity_reservations,
                    modify_instance_capacity_reservation_attributes):
        patcher.set(EC2Response, handler.__name__, handler)
    patcher.set(Instance, "capacity_reservation_specification",
                property(_instance_specification))
    patcher.set(Instance, "capacity_reservation_id", property(_instance_reservation))
    # DescribeInstances' PlatformDetails, which moto leaves out: AWS names an instance's
    # platform there as Capacity Reservations do ("AMI billing information fields",
    # docs.aws.amazon.com/AWSEC2/latest/UserGuide/billing-info-fields.html).
    patcher.set(Instance, "platform_details", property(capacity.platform_of))
