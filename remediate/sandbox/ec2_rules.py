"""EC2 preconditions moto does not enforce, raised with AWS's error codes.

Each ``check_*`` function raises a :class:`~remediate.sandbox.errors.SandboxError`
or returns ``None``. They read moto's model objects and the sandbox's facts.
"""

from __future__ import annotations

from typing import Any

from remediate.sandbox import errors
from remediate.sandbox.state import World

BAD_KMS_STATES = frozenset({"Disabled", "PendingDeletion", "PendingImport", "Unavailable"})


def root_mapping(instance: Any) -> Any | None:
    """The block device attached at the instance's root device name, if any."""
    return instance.block_device_mapping.get(instance.root_device_name)


def check_start(world: World, instance: Any) -> None:
    if instance.state in ("pending", "running", "stopped"):
        if instance.state == "stopped" and world.facts(instance.id).spot_type != "persistent":
            # A persistent Spot instance without its root volume is accepted and then
            # terminated by EC2 (see ec2_instances); every other instance is refused.
            root = root_mapping(instance)
            if root is None or root.status == "detaching":
                raise errors.no_root_volume(instance.id, instance.root_device_name)
        return
    raise errors.cannot_start(instance.id)


def check_stop(world: World, instance: Any) -> None:
    if str(instance.disable_api_stop).lower() == "true":
        raise errors.stop_protected(instance.id)
    if world.facts(instance.id).spot_type == "one-time":
        raise errors.one_time_spot(instance.id)
    if instance.state == "pending":
        raise errors.never_running(instance.id)
    if instance.state not in ("running", "stopping", "stopped"):
        raise errors.cannot_stop(instance.id)


def check_reboot(instance: Any) -> None:
    if instance.state != "running":
        raise errors.not_running_for_reboot(instance.id)


def check_attach(world: World, volume: Any, instance: Any, device: str) -> None:
    if volume.attachment is not None:
        raise errors.volume_in_use(volume.id)
    if volume.status != "available":
        raise errors.volume_not_available(volume.id, volume.status)
    if volume.zone is not None and volume.zone.name != instance.placement.zone:
        raise errors.zone_mismatch(volume.id, instance.id)
    if instance.state not in ("running", "stopped"):
        raise errors.instance_not_running_for_attach(instance.id)
    if volume.id in world.marketplace_volumes and instance.state != "stopped":
        raise errors.marketplace_attach(volume.id, instance.id)
    if device in instance.block_device_mapping:
        raise errors.device_in_use(device)


def check_detach(volume: Any) -> None:
    attachment = volume.attachment
    if attachment is None:
        raise errors.volume_not_available(volume.id, volume.status)
    if attachment.status == "detaching":
        raise errors.volume_not_available(volume.id, "detaching")
    instance = attachment.instance
    if attachment.device == instance.root_device_name and instance.state != "stopped":
        if instance.product_codes:
            raise errors.marketplace_detach(volume.id, instance.id)
        raise errors.root_detach(volume.id, instance.id)


def kms_key_usable(account_id: str, region: str, key_id: str | None,
                   principal: str | None = None, world: World | None = None) -> bool:
    """False if the volume's KMS key is disabled, pending deletion or missing, or, given
    the ``principal`` who asks EC2 to use it (and its ``world``), if KMS would not let
    that principal use it (:mod:`remediate.sandbox.kms_access`)."""
    if not key_id:
        return True
    from moto.kms import kms_backends

    from remediate.sandbox import kms_access

    kms = kms_backends[account_id][region]
    try:
        key = kms.describe_key(key_id)
    except Exception:  # moto raises its own NotFound types
        return False
    if str(key.key_state) in BAD_KMS_STATES:
        return False
    return principal is None or world is None or kms_access.allows(
        world, key, account_id, region, principal)
