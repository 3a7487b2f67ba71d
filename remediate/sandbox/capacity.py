"""EC2 capacity per (instance type, Availability Zone), and On-Demand Capacity
Reservations that hold some of it (moto 5.2.5 models neither).

An AZ can run out of a type: StartInstances then fails with
``InsufficientInstanceCapacity`` (EC2 API reference, "Error codes",
docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html: it can occur
when you launch a new instance, restart a stopped instance, create a new Capacity
Reservation, or modify an existing one). ``Sandbox.set_capacity`` sets the most
instances of a type the account can hold in an AZ; unset means unlimited. What holds capacity:

- a pending, running, stopping or shutting-down instance outside an active
  reservation (a stopped instance holds none: its capacity goes back to the AZ);
- an active Capacity Reservation, its whole ``TotalInstanceCount``, used or not
  ("Capacity Reservations": "the capacity is reserved ... whether you run
  instances in it or not"); an instance running in it holds nothing more.

Where a starting instance lands (EC2 User Guide, "Capacity Reservations",
"Instance matching criteria" and "Modify the Capacity Reservation settings of your
instance"): an instance that *targets* a reservation uses that one and nothing
else; with preference ``open`` it uses any active ``open`` reservation with the
same type, platform, AZ and tenancy and room left, else On-Demand capacity; with
``none``, On-Demand capacity; with ``capacity-reservations-only``, a reservation or
nothing. "After you cancel a Capacity Reservation, instances that target it can no
longer launch" ("Cancel a Capacity Reservation").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from remediate.sandbox import errors

HOLDING_STATES = frozenset({"pending", "running", "stopping", "shutting-down"})


@dataclass
class Reservation:
    """One On-Demand Capacity Reservation, with AWS's ``CapacityReservation`` names."""

    CapacityReservationId: str
    OwnerId: str
    Region: str
    InstanceType: str
    InstancePlatform: str
    AvailabilityZone: str
    Tenancy: str
    TotalInstanceCount: int
    InstanceMatchCriteria: str
    CreateDate: datetime
    StartDate: datetime
    State: str = "active"
    EndDateType: str = "unlimited"
    EbsOptimized: bool = False
    EphemeralStorage: bool = False
    ReservationType: str = "default"
    DeliveryPreference: str = "fixed"
    Tags: list[dict[str, str]] = field(default_factory=list)

    def answer(self, available: int) -> dict[str, Any]:
        """As DescribeCapacityReservations answers it, ``available`` instances free."""
        found = {k: v for k, v in vars(self).items() if k != "Region"}
        found["AvailableInstanceCount"] = max(0, available)
        found["CapacityReservationArn"] = (
            f"arn:aws:ec2:{self.Region}:{self.OwnerId}:capacity-reservation/"
            f"{self.CapacityReservationId}")
        return found


@dataclass
class Capacity:
    """Limits per (type, AZ) and every reservation, for all accounts and Regions."""

    limits: dict[tuple[str, str], int] = field(default_factory=dict)
    reservations: dict[str, Reservation] = field(default_factory=dict)
    created: int = 0
    """Reservations created since the sandbox started (for tests and benchmarks)."""

    def set_limit(self, instance_type: str, zone: str, instances: int | None) -> None:
        if instances is None:
            self.limits.pop((instance_type, zone), None)
        elif instances < 0:
            raise ValueError("capacity must be at least 0")
        else:
            self.limits[(instance_type, zone)] = instances

    def active(self, owner: str, region: str) -> list[Reservation]:
        return [r for r in self.reservations.values()
                if r.State == "active" and r.OwnerId == owner and r.Region == region]


def platform_of(instance: Any) -> str:
    """The instance's platform as Capacity Reservations name it."""
    return "Windows" if instance.platform == "windows" else "Linux/UNIX"


def tenancy_of(instance: Any) -> str:
    placement = getattr(instance, "_placement", None)
    return getattr(placement, "tenancy", None) or "default"


def zone_of(instance: Any) -> str:
    return str(instance.placement.zone if hasattr(instance.placement, "zone")
               else instance._placement.zone)


def matches(reservation: Reservation, instance: Any) -> bool:
    """Type, platform, AZ and tenancy all match ("Instance matching criteria")."""
    return (reservation.InstanceType == instance.instance_type
            and reservation.InstancePlatform == platform_of(instance)
            and reservation.AvailabilityZone == zone_of(instance)
            and reservation.Tenancy == tenancy_of(instance))


class Ledger:
    """Who holds what in one account and Region, with what a request adds on top."""

    def __init__(self, capacity: Capacity, facts: Any, backend: Any) -> None:
        self.capacity = capacity
        self.owner: str = backend.account_id
        self.region: str = backend.region_name
        self.active = {r.CapacityReservationId: r
                       for r in capacity.active(self.owner, self.region)}
        self.used: Counter[str] = Counter()
        self.on_demand: Counter[tuple[str, str]] = Counter()
        for instance in backend.all_instances():
            if instance.state not in HOLDING_STATES:
                continue
            within = facts(instance.id).capacity_reservation
            if within in self.active:
                self.used[within] += 1
            else:
                self.on_demand[(instance.instance_type, zone_of(instance))] += 1
        for reservation in self.active.values():
            key = (reservation.InstanceType, reservation.AvailabilityZone)
            self.on_demand[key] += reservation.TotalInstanceCount

    def available(self, reservation_id: str) -> int:
        reservation = self.active.get(reservation_id)
        if reservation is None:
            return 0
        return reservation.TotalInstanceCount - self.used[reservation_id]

    def room(self, instance_type: str, zone: str) -> int | None:
        """How many more instances the AZ has for the type (None: no limit)."""
        limit = self.capacity.limits.get((instance_type, zone))
        if limit is None:
            return None
        return limit - self.on_demand[(instance_type, zone)]

    def take(self, instance_type: str, zone: str, count: int) -> None:
        """Hold ``count`` more of On-Demand capacity, or raise AWS's error."""
        room = self.room(instance_type, zone)
        if room is not None and room < count:
            raise errors.insufficient_capacity(instance_type, zone)
        self.on_demand[(instance_type, zone)] += count

    def place(self, instance: Any, preference: str, target: str | None) -> str | None:
        """The reservation a starting instance runs in (None: On-Demand capacity),
        counted as held; raises AWS's error when it cannot start."""
        zone = zone_of(instance)
        if target is not None:
            reservation = self.capacity.reservations.get(target)
            if reservation is None or target not in self.active:
                raise errors.target_reservation_unusable(instance.id, target)
            if not matches(reservation, instance) or self.available(target) < 1:
                raise errors.insufficient_capacity(instance.instance_type, zone)
            self.used[target] += 1
            return target
        if preference in ("open", "capacity-reservations-only"):
            for reservation in self.active.values():
                if (reservation.InstanceMatchCriteria == "open" and matches(reservation, instance)
                        and self.available(reservation.CapacityReservationId) > 0):
                    self.used[reservation.CapacityReservationId] += 1
                    return reservation.CapacityReservationId
            if preference == "capacity-reservations-only":
                raise errors.insufficient_capacity(instance.instance_type, zone)
        self.take(instance.instance_type, zone, 1)
        return None
