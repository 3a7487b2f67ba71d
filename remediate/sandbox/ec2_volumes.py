"""EBS attach/detach/snapshot on the sandbox clock, with AWS's rules.

Patches ``EBSBackend.attach_volume``/``detach_volume`` (rules from
:mod:`ec2_rules`; attachment ``attaching`` -> ``attached``, ``detaching`` ->
volume ``available``), ``create_snapshot`` (``pending`` -> ``completed``, copies
the channel-file flag), ``create_volume`` (copies the flag from its snapshot)
and ``Snapshot.progress``.
"""

from __future__ import annotations

from typing import Any

from moto.ec2.models.elastic_block_store import EBSBackend, Snapshot
from moto.ec2.responses.elastic_block_store import ElasticBlockStore

from remediate.sandbox import ec2_rules, incident, kms_access
from remediate.sandbox.patcher import Patcher
from remediate.sandbox.state import current


def install(patcher: Patcher) -> None:
    original_attach: Any = EBSBackend.attach_volume
    original_detach: Any = EBSBackend.detach_volume
    original_snapshot: Any = EBSBackend.create_snapshot
    original_create_volume: Any = EBSBackend.create_volume
    original_attach_request: Any = ElasticBlockStore.attach_volume

    def attach_request(self: Any) -> Any:
        """The request: who asks (the principal EC2 uses the volume's key for)."""
        token = kms_access.CALLER.set(kms_access.caller(
            self.current_account, self.region, self.get_access_key()))
        try:
            return original_attach_request(self)
        finally:
            kms_access.CALLER.reset(token)

    def attach_volume(
        self: Any,
        volume_id: str,
        instance_id: str,
        device_path: str,
        delete_on_termination: bool = False,
    ) -> Any:
        world = current()
        if world.internal:
            return original_attach(self, volume_id, instance_id, device_path, delete_on_termination)
        volume = self.get_volume(volume_id)
        instance = self.get_instance(instance_id)
        ec2_rules.check_attach(world, volume, instance, device_path)
        caller = kms_access.CALLER.get()
        attachment = original_attach(
            self, volume_id, instance_id, device_path, delete_on_termination
        )
        mapping = instance.block_device_mapping[device_path]
        attachment.status = mapping.status = "attaching"

        def attached(_: float) -> None:
            if volume.attachment is not attachment or attachment.status != "attaching":
                return
            if volume.encrypted and not ec2_rules.kms_key_usable(
                    self.account_id, self.region_name, volume.kms_key_id, caller, world):
                # EC2 cannot decrypt the volume's data key (the key is unusable, or KMS
                # refuses the caller the grant or Decrypt EC2 asks for on its behalf): the
                # attachment fails and the volume is available again ("the next time the
                # encrypted EBS volume is attached to an EC2 instance, the attachment
                # fails": https://docs.aws.amazon.com/kms/latest/developerguide/
                # unusable-kms-keys.html). AWS documents no error code for the refused
                # grant; the sandbox models it as the unusable key.
                original_detach(self, volume_id, instance_id, device_path)
                return
            attachment.status = "attached"
            mapping.status = "in-use"

        world.timeline.schedule(
            ("volume", volume_id),
            world.now() + world.durations.draw("volume_attach", volume_id),
            attached,
        )
        return attachment

    def detach_volume(
        self: Any, volume_id: str, instance_id: str | None, device_path: str | None
    ) -> Any:
        world = current()
        if world.internal:
            return original_detach(self, volume_id, instance_id, device_path)
        volume = self.get_volume(volume_id)
        if (
            volume.attachment is not None
            and instance_id
            and (volume.attachment.instance.id != instance_id)
        ):
            return original_detach(self, volume_id, instance_id, device_path)
        ec2_rules.check_detach(volume)
        attachment = volume.attachment
        instance = attachment.instance
        attachment.status = "detaching"
        mapping = instance.block_device_mapping.get(attachment.device)
        if mapping is not None:
            mapping.status = "detaching"

        def detached(_: float) -> None:
            if volume.attachment is attachment:
                original_detach(self, volume_id, instance.id, attachment.device)

        world.timeline.schedule(
            ("volume", volume_id),
            world.now() + world.durations.draw("volume_detach", volume_id),
            detached,
        )
        return attachment

    def create_snapshot(self: Any, volume_id: str, *args: Any, **kwargs: Any) -> Any:
        world = current()
        snapshot = original_snapshot(self, volume_id, *args, **kwargs)
        world.created[snapshot.id] = world.now()
        # StartTime is the point in time the snapshot holds: on the sandbox's clock, not
        # moto's (the host's), so a snapshot's age follows simulated time.
        snapshot.start_time = world.clock.wall().replace(tzinfo=None)  # naive UTC, as moto
        volume = self.get_volume(volume_id)
        seconds = world.durations.snapshot_of(
            volume_id, float(volume.size), first=volume_id not in world.snapshotted)
        world.snapshotted.add(volume_id)
        incident.copy_to_snapshot(world, volume_id, snapshot.id)
        snapshot.status = "pending"

        def completed(_: float) -> None:
            if snapshot.status == "pending":
                snapshot.status = "error" if volume_id in world.failing_snapshots \
                    else "completed"

        world.timeline.schedule(
            ("snapshot", snapshot.id), world.now() + seconds, completed
        )
        return snapshot

    def create_volume(self: Any, *args: Any, **kwargs: Any) -> Any:
        volume = original_create_volume(self, *args, **kwargs)
        incident.copy_to_volume(current(), volume.snapshot_id, volume.id)
        return volume

    def progress(self: Any) -> str:
        return "100%" if self.status == "completed" else "0%"

    patcher.set(ElasticBlockStore, "attach_volume", attach_request)
    patcher.set(EBSBackend, "attach_volume", attach_volume)
    patcher.set(EBSBackend, "detach_volume", detach_volume)
    patcher.set(EBSBackend, "create_snapshot", create_snapshot)
    patcher.set(EBSBackend, "create_volume", create_volume)
    patcher.set(Snapshot, "progress", property(progress))
