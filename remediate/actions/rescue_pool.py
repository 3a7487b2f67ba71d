"""The rescue pool: helper instances per Availability Zone that hold broken root volumes.

A volume can only attach to an instance in its own AZ, and one instance can hold
several volumes at once in free device slots (``xvdf``..``xvdp``; never the root
device). The pool launches rescue instances on demand (at most ``max_per_az`` per
AZ, tagged with the run id) and hands out slots. A target that needs a slot while
an instance is launching parks on a :class:`Gate` until the instance is ready (or
its launch failed); one that finds every slot taken and the AZ at its cap queues:
each slot the pool frees is reserved for the longest-waiting target (first come,
first served: no target starves while newcomers take the slots), and every waiter
also looks again after :data:`FULL_POLL` seconds, re-reading the slots from AWS at
most once per interval per AZ, because a rollback (``ec2.reattach_root``) may take
a volume off a rescue instance without telling the pool.

It is a run-wide service: all targets of a run share it, and
:meth:`RescuePool.finish` terminates its instances at the end of the run, never
while a customer volume is still attached to one.

The executor runs every generator on one scheduler thread, so state changes
between two ``yield``s are atomic; the lock still guards each change (cheap, and
safe should that ever change). The lock is never held across a ``yield``.

Nothing here is trusted across a crash: on first use in a Region the pool
rediscovers its instances by the ``remediate:run-id`` tag and the volumes on
them, and an instance it did not see become ready is waited for again.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from remediate.actions.contract import RunService, StepContext
from remediate.actions.ec2_inspect import ROOT_OF_TAG
from remediate.actions.lost_replies import DETACH_CONFLICTS
from remediate.actions.requests import (
    ActionRun,
    AwsError,
    Call,
    Gate,
    OutcomeUnknown,
    StepFailed,
    wait_state,
)
from remediate.actions.rescue_launch import (
    SLOTS,
    Pulled,
    RescueConfig,
    launch,
    slot_of,
    tag_filters,
)

# How often a target waiting for a slot in a full AZ looks again.
FULL_POLL: Final = 30.0
# Waiters _hand_over looks at for each freed slot (beyond the first only on a mismatch).
_HAND_OVER_LOOKS: Final = 8
# A reservation never attached after this long is dropped (its target went away).
STALE_RESERVATION: Final = 1800.0
_DETACH_TIMEOUT: Final = 600.0
# A slot AWS says is in use by a volume we did not learn of.
_UNKNOWN: Final = "?"


@dataclass(eq=False)
class RescueInstance:
    az: str
    image_id: str
    instance_id: str = ""  # empty while its RunInstances is in flight
    platform: str = "windows"
    root_slot: str = "xvda1"
    ready: bool = False  # running and its SSM agent Online
    driven: bool = False  # a target is launching it or waiting for it to become ready
    launched: bool = False  # launched by this process (so nothing was ever attached to it)
    # Its RunInstances ClientToken, kept once chosen: a launch whose reply was lost is
    # sent again with it, and AWS answers with the instance it launched, never a second.
    token: str = ""
    failed: str = ""
    # slot -> volume id holding (or reserved for) it
    volumes: dict[str, str] = field(default_factory=dict)
    # Volumes AWS showed attached: when AWS no longer does, their slot is free.
    confirmed: set[str] = field(default_factory=set)
    # Volumes not (yet) seen attached -> when their slot was reserved.
    reserved_at: dict[str, float] = field(default_factory=dict)

    def device(self, slot: str) -> str:
        """The device name AttachVolume gets: xvdf on Windows, /dev/xvdf on Linux."""
        return slot if self.platform == "windows" else f"/dev/{slot}"

    def free_slot(self, limit: int) -> str | None:
        used = sum(1 for slot in self.volumes if slot in SLOTS)
        if used >= limit:
            return None
        return next((slot for slot in SLOTS if slot not in self.volumes), None)

    def forget(self, volume_id: str) -> bool:
        """Drop ``volume_id`` from every slot; whether it held one."""
        slots = [slot for slot, held in self.volumes.items() if held == volume_id]
        for slot in slots:
            del self.volumes[slot]
        self.confirmed.discard(volume_id)
        self.reserved_at.pop(volume_id, None)
        return bool(slots)

    def reconcile(self, attached: Mapping[str, str], now: float) -> bool:
        """Match the slots to what AWS shows attached (slot -> volume); whether one freed."""
        freed = False
        for slot, held in list(self.volumes.items()):
            if attached.get(slot) == held:
                self.confirmed.add(held)
                self.reserved_at.pop(held, None)
            elif (held == _UNKNOWN or held in self.confirmed
                  or now - self.reserved_at.get(held, now) > STALE_RESERVATION):
                freed = self.forget(held) or freed
                self.volumes.pop(slot, None)
        for slot, held in attached.items():
            if slot != self.root_slot and slot not in self.volumes:
                self.volumes[slot] = held
                self.confirmed.add(held)
        return freed


@dataclass(frozen=True)
class Slot:
    rescue: RescueInstance
    slot: str

    @property
    def device(self) -> str:
        return self.rescue.device(self.slot)


@dataclass
class _Bell:
    """A gate name with a generation: parkers wait on the current one, ``ring`` opens it.

    Each ring moves to a new key, so the pool works whether the executor's gates
    stay open once opened or are one-shot.
    """

    name: str
    generation: int = 0

    def gate(self) -> Gate:
        return Gate(f"{self.name}#{self.generation}")

    def ring(self, ctx: StepContext) -> None:
        key = f"{self.name}#{self.generation}"
        self.generation += 1
        ctx.open_gate(key)


@dataclass(frozen=True)
class _Waiter:
    volume_id: str
    config: RescueConfig
    key: str  # the gate it parks on


@dataclass
class _Zone:
    bell: _Bell
    instances: list[RescueInstance] = field(default_factory=list)
    refreshed: float = float("-inf")
    # Targets waiting for a slot in a full AZ, by volume id, first come first.
    waiters: OrderedDict[str, _Waiter] = field(default_factory=OrderedDict)
    _tickets: int = 0
    # Targets that said ahead of time they will want a slot here (rescue.prepare).
    announced: set[str] = field(default_factory=set)

    def wait(self, volume_id: str, config: RescueConfig) -> Gate:
        """The gate ``volume_id`` waits on for a slot (its place in the queue is kept
        across timeouts): opened once a slot is reserved for it, or after
        :data:`FULL_POLL` (a rollback may free a slot without telling the pool)."""
        waiter = self.waiters.get(volume_id)
        if waiter is None:
            self._tickets += 1
            waiter = _Waiter(volume_id, config, f"{self.bell.name}:slot#{self._tickets}")
            self.waiters[volume_id] = waiter
        return Gate(waiter.key, timeout=FULL_POLL)

    def waiting(self, volume_id: str) -> bool:
        return volume_id in self.waiters

    def leave(self, volume_id: str) -> None:
        self.waiters.pop(volume_id, None)


@dataclass
class _Place:
    """One account and Region: discovered once per process."""

    bell: _Bell
    discovered: bool = False
    discovering: bool = False


def _place_key(ctx: StepContext) -> tuple[str, str]:
    return ctx.target.account, ctx.target.region


def _instances(response: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [i for r in response.get("Reservations", []) for i in r.get("Instances", [])]


class RescuePool(RunService):
    cleanup = "terminating the rescue instances"

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self._lock = threading.RLock()
        self._places: dict[tuple[str, str], _Place] = {}
        self._zones: dict[tuple[str, str, str], _Zone] = {}
        self._nonce = secrets.token_hex(4)
        self._launches = 0

    # ---- what the actions use ---------------------------------------------------

    def places(self) -> list[tuple[str, str]]:
        """(account, Region) pairs this pool worked in: ``finish`` needs one ctx for each."""
        return sorted(self._places)

    def known(self, ctx: StepContext, instance_id: str) -> Pulled:
        """The rescue instance of this run with that id (None if it is not one)."""
        yield from self._discover(ctx)
        with self._lock:
            for zone in self._zones_of(ctx):
                for rescue in zone.instances:
                    if rescue.instance_id == instance_id:
                        return rescue
        return None

    def acquire(self, ctx: StepContext, config: RescueConfig, az: str, volume_id: str) -> Pulled:
        """A slot for ``volume_id`` on a ready rescue instance in ``az``, launching one if
        none has room and the AZ is under its cap, else waiting. Returns a :class:`Slot`."""
        yield from self._discover(ctx)
        zone = self._zone(ctx, az)
        while True:
            with self._lock:
                slot = self._reserve(zone, config, volume_id, ctx.clock.now())
                if slot is None and self._live(zone) < config.max_per_az:
                    zone.instances.append(RescueInstance(az, config.image_id))
                    slot = self._reserve(zone, config, volume_id, ctx.clock.now())
                launching = any(not r.ready and not r.failed for r in zone.instances)
            if slot is None:
                try:
                    if launching:
                        yield zone.bell.gate()  # rung when it is ready, or failed
                    else:
                        yield zone.wait(volume_id, config)
                except BaseException:  # the step was cancelled: give up its place
                    zone.leave(volume_id)
                    raise
                if not launching and zone.waiting(volume_id):
                    # Timed out, nothing handed it a slot: look at AWS (a rollback may have
                    # freed one behind the pool's back).
                    yield from self._refresh(ctx, zone)
                continue
            zone.leave(volume_id)
            try:
                yield from self.ready(ctx, slot.rescue, config)
            except BaseException:  # failed launch, or the step was cancelled
                self.release(ctx, volume_id)
                raise
            if slot.rescue.volumes.get(slot.slot) == volume_id:
                return slot

    def launch_ahead(self, ctx: StepContext, config: RescueConfig, az: str) -> Pulled:
        """The target will want a slot in ``az``: launch a rescue instance now, without
        waiting for it, if the AZ's instances (launching ones too) have fewer slots than
        the targets announced so far and the AZ is under its cap. It boots while the
        targets are backed up and stopped, so volumes do not wait for launches. Returns
        its id, or "" if none was needed."""
        yield from self._discover(ctx)
        zone = self._zone(ctx, az)
        with self._lock:
            zone.announced.add(ctx.target.key)
            live = sum(1 for rescue in zone.instances if not rescue.failed)
            if (live >= config.max_per_az
                    or live * config.volumes_per_instance >= len(zone.announced)):
                return ""
            rescue = RescueInstance(az, config.image_id, driven=True)
            zone.instances.append(rescue)
        yield from self._drive(ctx, zone, rescue, config, wait=False)
        return rescue.instance_id

    def ready(self, ctx: StepContext, rescue: RescueInstance, config: RescueConfig) -> Pulled:
        """Return once ``rescue`` is running with its SSM agent Online (driving it there
        if no other target is), or raise StepFailed if it cannot get there."""
        zone = self._zone(ctx, rescue.az)
        while not rescue.ready:
            with self._lock:
                if rescue.failed:
                    raise StepFailed(rescue.failed)
                drive = not rescue.driven
                rescue.driven = True
            if drive:
                yield from self._drive(ctx, zone, rescue, config)
            else:
                yield zone.bell.gate()

    def note_attached(self, ctx: StepContext, rescue: RescueInstance, device: str,
                      volume_id: str) -> None:
        """``volume_id`` is attached to ``rescue`` at ``device`` (AWS says so)."""
        with self._lock:
            rescue.forget(volume_id)
            rescue.volumes[slot_of(device)] = volume_id
            rescue.confirmed.add(volume_id)

    def mark_taken(self, ctx: StepContext, found: Slot, volume_id: str) -> None:
        """AWS says ``found``'s device is in use by something we did not know of."""
        with self._lock:
            if found.rescue.volumes.get(found.slot) == volume_id:
                found.rescue.forget(volume_id)
                found.rescue.volumes[found.slot] = _UNKNOWN

    def release(self, ctx: StepContext, volume_id: str) -> None:
        """``volume_id`` no longer holds (or will not take) its slot: wake parked targets."""
        with self._lock:
            for zone in self._zones_of(ctx):
                zone.leave(volume_id)
                if any([rescue.forget(volume_id) for rescue in zone.instances]):
                    self._hand_over(ctx, zone)
                    zone.bell.ring(ctx)

    # ---- the end of the run -----------------------------------------------------

    def finish(self, ctx: StepContext) -> ActionRun:
        """Terminate this run's rescue instances in ctx's account and Region.

        Any volume still attached to one (other than its own root) is detached first
        and left ``available``; an instance whose volume will not detach is kept, and
        the step fails naming it, so no customer volume is ever terminated with it.
        """
        found = yield from self._describe_ours("pending", "running", "stopping", "stopped")
        roots = {i["InstanceId"]: i.get("RootDeviceName", "") for i in found}
        detached: list[str] = []
        trouble: dict[str, list[str]] = {}
        for held in (yield from _customer_volumes(roots)):
            try:
                yield from detach_from_rescue(held.volume_id, held.instance_id,
                                              state=held.state)
                whose = f"; root of {held.owner}" if held.owner else ""
                detached.append(f"{held.volume_id} (was on {held.instance_id} at "
                                f"{held.device}{whose})")
            except (AwsError, StepFailed) as exc:
                trouble.setdefault(held.instance_id, []).append(
                    f"{held.volume_id} at {held.device}: {exc}")
        still = {held.instance_id for held in (yield from _customer_volumes(roots))}
        doomed = sorted(set(roots) - still)
        if doomed:
            yield Call("ec2", "TerminateInstances", {"InstanceIds": doomed},
                       batch_key="InstanceIds", note="terminate rescue instances")
        self._forget(ctx)
        if still:
            kept = "; ".join(f"{i}: {', '.join(trouble.get(i, ['a volume is attached']))}"
                             for i in sorted(still))
            left = f" Detached and left available: {', '.join(detached)}." if detached else ""
            raise StepFailed(f"kept rescue instance(s) that still hold a customer volume "
                             f"(detach it, reattach it to its instance, then terminate the "
                             f"rescue instance): {kept}.{left}")
        return {"terminated": doomed, "left_available": detached}

    # ---- internals --------------------------------------------------------------

    def _zones_of(self, ctx: StepContext) -> list[_Zone]:
        place = _place_key(ctx)
        return [zone for key, zone in self._zones.items() if key[:2] == place]

    def _zone(self, ctx: StepContext, az: str) -> _Zone:
        key = (*_place_key(ctx), az)
        with self._lock:
            zone = self._zones.get(key)
            if zone is None:
                zone = self._zones[key] = _Zone(_Bell(f"rescue:{self.run_id}:{'/'.join(key)}"))
            return zone

    def _forget(self, ctx: StepContext) -> None:
        with self._lock:
            place = _place_key(ctx)
            for key in [k for k in self._zones if k[:2] == place]:
                del self._zones[key]
            self._places.pop(place, None)

    def _hand_over(self, ctx: StepContext, zone: _Zone) -> None:
        """Slots just freed go to the targets waiting for one, in order of arrival:
        reserved for each, then its gate opened (a newcomer cannot take a slot from
        under someone who waited). Looks a few waiters deep, should the first want an
        image no slot fits."""
        now = ctx.clock.now()
        served = []
        for waiter in itertools.islice(zone.waiters.values(), _HAND_OVER_LOOKS):
            if self._reserve(zone, waiter.config, waiter.volume_id, now) is not None:
                served.append(waiter)
            elif not any(rescue.free_slot(waiter.config.volumes_per_instance)
                         for rescue in zone.instances):
                break  # no slot left for anyone
        for waiter in served:
            del zone.waiters[waiter.volume_id]
            ctx.open_gate(waiter.key)

    @staticmethod
    def _live(zone: _Zone) -> int:
        return sum(1 for rescue in zone.instances if not rescue.failed)

    @staticmethod
    def _reserve(zone: _Zone, config: RescueConfig, volume_id: str, now: float) -> Slot | None:
        """Reserve (or find this volume's existing reservation of) a slot in ``zone``."""
        usable = [r for r in zone.instances if not r.failed and r.image_id == config.image_id]
        for rescue in usable:
            for slot, held in rescue.volumes.items():
                if held == volume_id:
                    return Slot(rescue, slot)
        # Ready instances first (no waiting), then the fullest (keep the others free).
        usable.sort(key=lambda r: (not r.ready, -len(r.volumes)))
        for rescue in usable:
            free = rescue.free_slot(config.volumes_per_instance)
            if free is not None:
                rescue.volumes[free] = volume_id
                rescue.reserved_at[volume_id] = now
                return Slot(rescue, free)
        return None

    def _refresh(self, ctx: StepContext, zone: _Zone) -> Pulled:
        """Re-read which slots are taken (at most once per FULL_POLL per AZ)."""
        now = ctx.clock.now()
        ids = sorted(r.instance_id for r in zone.instances if r.instance_id and r.ready)
        if now - zone.refreshed < FULL_POLL or not ids:
            return
        zone.refreshed = now
        response = yield Call("ec2", "DescribeVolumes", {"Filters": [
            {"Name": "attachment.instance-id", "Values": ids}]},
            note="which rescue slots are free")
        attached: dict[str, dict[str, str]] = {}
        for volume in response.get("Volumes", []):
            for found in volume.get("Attachments", []):
                attached.setdefault(found["InstanceId"], {})[slot_of(found["Device"])] = (
                    volume["VolumeId"])
        with self._lock:
            freed = [r.reconcile(attached.get(r.instance_id, {}), now)
                     for r in zone.instances if r.instance_id in ids]
        if any(freed):
            self._hand_over(ctx, zone)
            zone.bell.ring(ctx)

    def _discover(self, ctx: StepContext) -> Pulled:
        key = _place_key(ctx)
        with self._lock:
            place = self._places.get(key)
            if place is None:
                place = self._places[key] = _Place(_Bell(f"rescue:{self.run_id}:{'/'.join(key)}"))
        while not place.discovered:
            if place.discovering:
                yield place.bell.gate()
                continue
            place.discovering = True
            try:
                found = yield from self._describe_ours("pending", "running")
                with self._lock:
                    for instance in found:
                        self._adopt(ctx, instance)
                    place.discovered = True
            finally:
                place.discovering = False
                place.bell.ring(ctx)

    def _describe_ours(self, *states: str) -> Pulled:
        found: list[Mapping[str, Any]] = []
        request: dict[str, Any] = {"Filters": tag_filters(self.run_id, states)}
        while True:
            response = yield Call("ec2", "DescribeInstances", request,
                                  note="find this run's rescue instances")
            found.extend(_instances(response))
            token = response.get("NextToken")
            if not token:
                return found
            request = {**request, "NextToken": token}

    def _adopt(self, ctx: StepContext, instance: Mapping[str, Any]) -> None:
        az = instance.get("Placement", {}).get("AvailabilityZone", "")
        rescue = RescueInstance(
            az, str(instance.get("ImageId", "")), str(instance["InstanceId"]),
            platform="windows" if instance.get("Platform") == "windows" else "linux",
            root_slot=slot_of(str(instance.get("RootDeviceName", ""))),
        )
        for mapping in instance.get("BlockDeviceMappings", []):
            slot = slot_of(str(mapping.get("DeviceName", "")))
            volume_id = str(mapping.get("Ebs", {}).get("VolumeId", _UNKNOWN))
            if slot != rescue.root_slot:
                rescue.volumes[slot] = volume_id
                rescue.confirmed.add(volume_id)
        self._zone(ctx, az).instances.append(rescue)

    def _drive(self, ctx: StepContext, zone: _Zone, rescue: RescueInstance,
               config: RescueConfig, *, wait: bool = True) -> Pulled:
        """Launch ``rescue`` if it has no instance yet, then (``wait``) wait until it is
        usable."""
        try:
            if not rescue.instance_id:
                if not rescue.token:
                    self._launches += 1
                    digest = hashlib.sha256(f"{self.run_id}|{rescue.az}".encode()).hexdigest()
                    rescue.token = f"{digest[:32]}-{self._nonce}-{self._launches}"
                launched = yield from launch(self.run_id, ctx.target.region, rescue.az, config,
                                             rescue.token)
                rescue.instance_id, rescue.launched = launched.instance_id, True
                rescue.platform, rescue.root_slot = launched.platform, launched.root_slot
            if not wait:
                return
            yield wait_state("instance", rescue.instance_id, "running",
                             fail_on=("shutting-down", "terminated", "stopping", "stopped"),
                             timeout=config.ready_timeout)
            yield wait_state("ssm-agent", rescue.instance_id, "Online",
                             timeout=config.ready_timeout)
            rescue.ready = True
        except (AwsError, StepFailed) as exc:
            with self._lock:
                rescue.failed = (f"rescue instance {rescue.instance_id or '(not launched)'} in "
                                 f"{rescue.az} is not usable: {exc}")
                zone.instances.remove(rescue)
            if rescue.launched:
                # Never ready, so nothing was attached to it: do not keep paying for it.
                yield from _terminate_quietly(rescue.instance_id)
            raise StepFailed(rescue.failed) from exc
        finally:
            rescue.driven = False
            zone.bell.ring(ctx)


@dataclass(frozen=True)
class _Held:
    """A customer volume on a rescue instance."""

    volume_id: str
    instance_id: str
    device: str
    owner: str  # whose root volume it is ("" if not tagged)
    state: str  # its attachment's state


def _customer_volumes(roots: Mapping[str, str]) -> Pulled:
    """Each non-root volume (:class:`_Held`) on ``roots``' keys (rescue instance ->
    its root device)."""
    if not roots:
        return []
    response = yield Call("ec2", "DescribeVolumes", {"Filters": [
        {"Name": "attachment.instance-id", "Values": sorted(roots)}]})
    out = []
    for volume in response.get("Volumes", []):
        owner = next((t.get("Value", "") for t in volume.get("Tags", [])
                      if t.get("Key") == ROOT_OF_TAG), "")
        for found in volume.get("Attachments", []):
            instance_id, device = found.get("InstanceId", ""), found.get("Device", "")
            if instance_id in roots and slot_of(device) != slot_of(roots[instance_id]):
                out.append(_Held(volume["VolumeId"], instance_id, device, owner,
                                 str(found.get("State", ""))))
    return out


def _terminate_quietly(instance_id: str) -> Pulled:
    # On failure (or an unknown outcome) finish() finds it by its tags and tries again.
    with contextlib.suppress(AwsError, OutcomeUnknown):
        yield Call("ec2", "TerminateInstances", {"InstanceIds": [instance_id]},
                   batch_key="InstanceIds", note="terminate an unusable rescue instance")


def detach_from_rescue(volume_id: str, instance_id: str,
                       timeout: float = _DETACH_TIMEOUT, state: str = "attached") -> Pulled:
    """Detach ``volume_id`` from ``instance_id`` (unless already under way: its attachment
    ``state`` is ``detaching``, or AWS says so), wait available.

    Never forced: a forced detach can corrupt the file system just repaired.
    """
    if state != "detaching":
        try:
            yield Call("ec2", "DetachVolume", {"VolumeId": volume_id, "InstanceId": instance_id},
                       note=f"detach {volume_id} from rescue instance {instance_id}")
        except AwsError as exc:
            # Detaching or detached already (e.g. by our own DetachVolume, reply lost).
            if exc.code not in DETACH_CONFLICTS:
                raise
    yield wait_state("volume", volume_id, "available", timeout=timeout)
