"""EC2 instance lifecycle on the sandbox clock, with AWS's state rules.

Patches moto's ``InstanceBackend`` (run/start/stop/reboot/terminate),
``InstanceResponse`` (Spot type and request, :mod:`~remediate.sandbox.ec2_spot`, and
ephemeral mappings on RunInstances, the
real current state in Start/Stop responses) and ``Instance.setup_defaults`` (the default root
volume goes at the AMI's root device name), ``Instance.instance_status``/
``system_status`` (status checks driven by boot health: ``initializing`` while
booting, then ``ok`` with a clean root volume or ``impaired`` while the channel
file is still there).
"""

from __future__ import annotations

import copy
from functools import partial
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.models.instance_types import INSTANCE_TYPES
from moto.ec2.models.instances import Instance, InstanceBackend, StateReason
from moto.ec2.responses.instances import InstanceResponse

from remediate.sandbox import capacity, ec2_rules, ec2_spot, incident
from remediate.sandbox.patcher import Patcher
from remediate.sandbox.state import World, current, maybe_current

_REACHABILITY = {"ok": "passed", "impaired": "failed", "initializing": "initializing"}

KMS_STATE_REASON = StateReason(
    "Client.InvalidKMSKey.InvalidState: The KMS key provided is in an incorrect state",
    "Client.InvalidKMSKey.InvalidState",
)


def has_instance_store(instance_type: str) -> bool:
    info = INSTANCE_TYPES.get(instance_type, {})
    return bool(info.get("InstanceStorageSupported"))


def begin_boot(world: World, instance: Any, at: float, period: float) -> None:
    """The instance is (re)booting: status ``initializing`` until ``at + period``."""
    world.facts(instance.id).status = "initializing"
    world.timeline.schedule(
        ("boot", instance.id), at + period, lambda t: finish_boot(world, instance, t)
    )


def finish_boot(world: World, instance: Any, at: float) -> None:
    if instance.state != "running":
        return
    facts = world.facts(instance.id)
    facts.status = "impaired" if incident.guest_broken(world, instance) else "ok"
    if facts.status == "ok":
        for listener in list(world.online_listeners):
            listener(instance, at)


def settle_running(world: World, instance: Any) -> None:
    """Put a just-launched instance straight into ``running`` with its boot done."""
    world.timeline.cancel(("state", instance.id))
    world.timeline.cancel(("boot", instance.id))
    instance._state.name, instance._state.code = "running", 16
    facts = world.facts(instance.id)
    facts.status = "impaired" if incident.guest_broken(world, instance) else "ok"


def _finish_start(world: World, backend: Any, instance: Any, at: float) -> None:
    if instance.state != "pending":
        return
    root = ec2_rules.root_mapping(instance)
    if root is None:
        with world.moto_internal():
            instance.terminate()
        instance.state_reason = StateReason(
            "Server.SpotInstanceTermination: the root volume is not attached",
            "Server.SpotInstanceTermination",
        )
        return
    volume = backend.get_volume(root.volume_id)
    if volume.encrypted and not ec2_rules.kms_key_usable(
        backend.account_id, backend.region_name, volume.kms_key_id
    ):
        instance.stop()
        instance.state_reason = KMS_STATE_REASON
        return
    instance.start()
    begin_boot(world, instance, at, world.durations.draw("instance_boot", instance.id))


def _finish_stop(instance: Any, _: float) -> None:
    if instance.state == "stopping":
        instance.stop()


def _lose_instance_store(world: World, instance: Any) -> None:
    facts = world.facts(instance.id)
    if facts.instance_store:
        facts.instance_store_intact = False


def _place_starting(world: World, backend: Any, instances: list[Any]) -> None:
    """Find capacity for every stopped instance of one StartInstances call, or refuse
    the whole call with InsufficientInstanceCapacity (:mod:`~remediate.sandbox.capacity`)."""
    if not world.capacity.limits and not world.capacity.reservations:
        return  # nothing is limited: skip counting a whole fleet on every start
    ledger = capacity.Ledger(world.capacity, world.facts, backend)
    placed = []
    for instance in instances:
        if instance.state == "stopped":
            facts = world.facts(instance.id)
            placed.append((facts, ledger.place(instance, facts.capacity_preference,
                                               facts.capacity_target)))
    for facts, reservation in placed:
        facts.capacity_reservation = reservation


def _check_launch_capacity(world: World, backend: Any, launch: dict[str, Any],
                           count: int) -> None:
    """RunInstances of ``count`` (MinCount) instances fails with
    InsufficientInstanceCapacity when the AZ it launches in has no room for them."""
    zone = launch.get("placement")
    if not zone and launch.get("subnet_id"):
        zone = backend.get_subnet(launch["subnet_id"]).availability_zone
    if zone and (launch.get("instance_type"), zone) in world.capacity.limits:
        capacity.Ledger(world.capacity, world.facts, backend).take(
            launch["instance_type"], zone, count)


def install(patcher: Patcher) -> None:
    _install_backend(patcher)
    _install_responses(patcher)
    _install_status_checks(patcher)


def _install_backend(patcher: Patcher) -> None:
    original_run = InstanceBackend.run_instances
    original_terminate = InstanceBackend.terminate_instances

    def run_instances(self: Any, image_id: str, count: int, *args: Any, **kwargs: Any) -> Any:
        world = current()
        _check_launch_capacity(world, self, kwargs, count)
        with world.moto_internal():
            reservation = original_run(self, image_id, count, *args, **kwargs)
        now = world.now()
        for instance in reservation.instances:
            facts = world.facts(instance.id)
            facts.instance_store = has_instance_store(instance.instance_type)
            facts.platform = "Windows" if instance.platform == "windows" else "Linux"
            instance._state.name, instance._state.code = "pending", 0
            world.timeline.schedule(
                ("state", instance.id),
                now + world.durations.draw("instance_start", instance.id),
                partial(_finish_start, world, self, instance),
            )
        return reservation

    def start_instances(self: Any, instance_ids: list[str]) -> list[tuple[Any, Any]]:
        world = current()
        instances = self.get_multi_instances_by_id(instance_ids)
        for instance in instances:
            ec2_rules.check_start(world, instance)
        _place_starting(world, self, instances)
        now = world.now()
        started = []
        for instance in instances:
            previous = copy.copy(instance._state)
            if instance.state == "stopped":
                instance._state.name, instance._state.code = "pending", 0
                instance._reason = ""
                instance.state_reason = StateReason()
                world.timeline.schedule(
                    ("state", instance.id),
                    now + world.durations.draw("instance_start", instance.id),
                    partial(_finish_start, world, self, instance),
                )
            started.append((instance, previous))
        return started

    def stop_instances(self: Any, instance_ids: list[str],
                       skip_os_shutdown: bool = False) -> list[tuple[Any, Any]]:
        """A stop takes ``instance_stop`` (``instance_stop_stuck`` for a crash-looping
        guest); with ``skip_os_shutdown`` (also sent to an instance already stopping) no
        guest shutdown is waited for: ``instance_stop_skip_os``."""
        world = current()
        instances = self.get_multi_instances_by_id(instance_ids)
        for instance in instances:
            ec2_rules.check_stop(world, instance)
        now = world.now()
        stopped = []
        for instance in instances:
            previous = copy.copy(instance._state)
            facts = world.facts(instance.id)
            took = world.durations.stop(instance.id, stuck=incident.root_is_bad(world, instance),
                                        skip_os=skip_os_shutdown)
            sooner = (instance.state == "stopping" and facts.stop_due is not None
                      and now + took < facts.stop_due)
            if instance.state == "running" or sooner:
                instance._state.name, instance._state.code = "stopping", 64
                world.timeline.cancel(("boot", instance.id))
                _lose_instance_store(world, instance)
                facts.stop_due = now + took
                world.timeline.schedule(
                    ("state", instance.id), now + took, partial(_finish_stop, instance),
                )
            stopped.append((instance, previous))
        return stopped

    def reboot_instances(self: Any, instance_ids: list[str]) -> list[Any]:
        world = current()
        instances = self.get_multi_instances_by_id(instance_ids)
        for instance in instances:
            ec2_rules.check_reboot(instance)
        now = world.now()
        for instance in instances:
            facts = world.facts(instance.id)
            facts.reboots += 1
            if facts.reboot_fix_after is not None and facts.reboots >= facts.reboot_fix_after:
                root = incident.root_volume_id(instance)
                if root is not None:
                    world.bad_volumes.discard(root)
            begin_boot(world, instance, now, world.durations.draw("reboot", instance.id))
        return list(instances)

    def terminate_instances(self: Any, instance_ids: list[str]) -> list[tuple[Any, Any]]:
        world = current()
        with world.moto_internal():
            terminated = original_terminate(self, instance_ids)
        for instance, _ in terminated:
            _lose_instance_store(world, instance)
            world.timeline.cancel(("state", instance.id))
            world.timeline.cancel(("boot", instance.id))
        return list(terminated)

    patcher.set(InstanceBackend, "run_instances", run_instances)
    patcher.set(InstanceBackend, "start_instances", start_instances)
    patcher.set(InstanceBackend, "stop_instances", stop_instances)
    patcher.set(InstanceBackend, "reboot_instances", reboot_instances)
    patcher.set(InstanceBackend, "terminate_instances", terminate_instances)


def _state_changes(key: str, changes: list[tuple[Any, Any]]) -> ActionResult:
    return ActionResult(
        {
            key: [
                {
                    "InstanceId": instance.id,
                    "CurrentState": {"Code": instance.state_code, "Name": instance.state},
                    "PreviousState": {"Code": previous.code, "Name": previous.name},
                }
                for instance, previous in changes
            ]
        }
    )


def _install_responses(patcher: Patcher) -> None:
    original_run = InstanceResponse.run_instances
    original_parse = InstanceResponse._parse_block_device_mapping
    original_validate = InstanceResponse._validate_block_device_mapping

    def run_instances(self: Any) -> ActionResult:
        market = self._get_param("InstanceMarketOptions.MarketType")
        options = "InstanceMarketOptions.SpotOptions."
        spot_type = self._get_param(options + "SpotInstanceType") or "one-time"
        result: ActionResult = original_run(self)
        if market == "spot":
            world = current()
            instances = result.result.instances  # type: ignore[attr-defined]
            for instance in instances:
                world.facts(instance.id).spot_type = spot_type
            ec2_spot.record_requests(self.ec2_backend, instances, spot_type,
                                     self._get_param(options + "InstanceInterruptionBehavior"),
                                     self._get_param(options + "MaxPrice"))
        return result

    def parse_block_device_mapping(self: Any) -> list[dict[str, Any]]:
        # Instance-store mappings (VirtualName ephemeralN) create no EBS volume.
        return [m for m in original_parse(self) if not m.get("VirtualName")]

    def validate_block_device_mapping(device_mapping: dict[str, Any]) -> None:
        if device_mapping.get("VirtualName") and "Ebs" not in device_mapping:
            return
        original_validate(device_mapping)

    def start_instances(self: Any) -> ActionResult:
        self.error_on_dryrun()
        changes = self.ec2_backend.start_instances(self._get_param("InstanceIds", []))
        return _state_changes("StartingInstances", changes)

    def stop_instances(self: Any) -> ActionResult:
        self.error_on_dryrun()
        # SkipOsShutdown (botocore's model; moto 5.2.5 does not read it).
        changes = self.ec2_backend.stop_instances(
            self._get_param("InstanceIds", []),
            skip_os_shutdown=self._get_bool_param("SkipOsShutdown", False))
        return _state_changes("StoppingInstances", changes)

    patcher.set(InstanceResponse, "run_instances", run_instances)
    patcher.set(InstanceResponse, "_parse_block_device_mapping", parse_block_device_mapping)
    patcher.set(
        InstanceResponse,
        "_validate_block_device_mapping",
        staticmethod(validate_block_device_mapping),
    )
    patcher.set(InstanceResponse, "start_instances", start_instances)
    patcher.set(InstanceResponse, "stop_instances", stop_instances)


def _install_status_checks(patcher: Patcher) -> None:
    def instance_status(self: Any) -> dict[str, Any]:
        if self.state_code != 16:
            return {"Status": "not-applicable"}
        world = maybe_current()
        status = world.facts(self.id).status if world is not None else "ok"
        return {
            "Status": status,
            "Details": [{"Name": "reachability", "Status": _REACHABILITY[status]}],
        }

    def system_status(self: Any) -> dict[str, Any]:
        if self.state_code != 16:
            return {"Status": "not-applicable"}
        world = maybe_current()
        booting = world is not None and world.facts(self.id).status == "initializing"
        status = "initializing" if booting else "ok"
        return {
            "Status": status,
            "Details": [{"Name": "reachability", "Status": _REACHABILITY[status]}],
        }

    def setup_defaults(self: Any) -> None:
        # moto attaches the default root volume at /dev/sda1 whatever the AMI says.
        volume = self.ec2_backend.create_volume(size=8, zone_name=self._placement.zone)
        self.ec2_backend.attach_volume(volume.id, self.id, self.root_device_name, True)

    patcher.set(Instance, "setup_defaults", setup_defaults)
    patcher.set(Instance, "instance_status", property(instance_status))
    patcher.set(Instance, "system_status", property(system_status))
