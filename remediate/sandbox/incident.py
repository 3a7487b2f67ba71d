"""The July 2024 incident: which disks hold the bad channel file, and the repair.

State is keyed by EBS volume id (``World.bad_volumes``); snapshots copy the
flag from their volume and volumes copy it from their snapshot.

Repair recognition rule (kept deliberately simple): an SSM script repairs
volume ``vol-X`` when its text contains ``C-00000291`` and the id ``vol-X``;
it succeeds only if ``vol-X`` is attached (state ``attached``) to the instance
running the script, is not that instance's own root volume and is not encrypted
with BitLocker (``World.bitlocker_volumes``), unless the script names an escrow holding
its recovery key (:mod:`remediate.sandbox.bitlocker_escrow`). Any named volume that
fails that test makes the command fail (exit 1, or the script's own code for a locked
volume) with a clear stderr.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from remediate.sandbox import bitlocker_escrow
from remediate.sandbox.state import World

CHANNEL_FILE_MARKER = "C-00000291"
CHANNEL_FILE_PATH = r"Windows\System32\drivers\CrowdStrike\C-00000291-00000000-00000032.sys"
_VOLUME_ID = re.compile(r"\bvol-[0-9a-f]{8,17}\b")


@dataclass(frozen=True)
class ScriptResult:
    exit_code: int
    stdout: str
    stderr: str


def root_volume_id(instance: Any) -> str | None:
    mapping = instance.block_device_mapping.get(instance.root_device_name)
    return None if mapping is None else str(mapping.volume_id)


def root_is_bad(world: World, instance: Any) -> bool:
    volume_id = root_volume_id(instance)
    return volume_id is not None and volume_id in world.bad_volumes


def guest_broken(world: World, instance: Any) -> bool:
    """Whether the guest fails its status checks once booted: the channel file on its
    root, or a guest broken otherwise (``InstanceFacts.guest``)."""
    facts = world.instances.get(instance.id)
    return root_is_bad(world, instance) or (facts is not None and facts.guest is not None)


def copy_to_snapshot(world: World, volume_id: str, snapshot_id: str) -> None:
    if volume_id in world.bad_volumes:
        world.bad_snapshots.add(snapshot_id)


def copy_to_volume(world: World, snapshot_id: str | None, volume_id: str) -> None:
    if snapshot_id is not None and snapshot_id in world.bad_snapshots:
        world.bad_volumes.add(volume_id)


def is_repair_script(script: str) -> bool:
    return CHANNEL_FILE_MARKER in script and bool(_VOLUME_ID.search(script))


def named_volumes(script: str) -> list[str]:
    """The volume ids a script names, in order, each once."""
    return list(dict.fromkeys(_VOLUME_ID.findall(script)))


def run_repair(world: World, instance: Any, script: str) -> ScriptResult:
    """Apply a repair script on ``instance`` (a running rescue instance)."""
    out: list[str] = []
    err: list[str] = []
    attached = {
        str(mapping.volume_id): device
        for device, mapping in instance.block_device_mapping.items()
        if mapping.status not in ("attaching", "detaching")
    }
    own_root = root_volume_id(instance)
    codes: list[int] = []  # the script's exit codes, where they say more than 1
    for volume_id in named_volumes(script):
        if volume_id not in attached or volume_id == own_root:
            err.append(
                f"Disk for volume {volume_id} not found: the volume is not attached "
                f"to {instance.id} as a data disk."
            )
            continue
        key = world.bitlocker_volumes.get(volume_id)
        if key is not None:
            refusal = bitlocker_escrow.unlock(instance, script, key)
            if refusal is not None:
                codes.append(refusal.code)
                err.append(f"{volume_id}: {refusal.message}")
                continue
            out.append(f"{volume_id}: unlocked (recovery key ID {key.key_id}) with the key "
                       f"at {bitlocker_escrow.reference(script)}")
        if volume_id in world.bad_volumes:
            world.bad_volumes.discard(volume_id)
            out.append(f"{volume_id} ({attached[volume_id]}): deleted {CHANNEL_FILE_PATH}")
        else:
            out.append(f"{volume_id} ({attached[volume_id]}): no {CHANNEL_FILE_MARKER}*.sys found")
        if key is not None:
            out.append(f"{volume_id}: locked again")
    code = (codes[0] if codes else 1) if err else 0
    return ScriptResult(code, "\n".join(out), "\n".join(err))


VERIFY_MARKER = "crowdstrike-verify"


def is_verify_script(script: str) -> bool:
    """playbooks/scripts/crowdstrike-verify.ps1 or .sh (its first lines name it)."""
    return VERIFY_MARKER in script and CHANNEL_FILE_MARKER in script


def verify_guest(world: World, instance: Any) -> ScriptResult:
    """The in-guest check, run on ``instance`` itself: its root must not hold the faulty
    channel file and its sensor must run (``World.sensor_stopped``)."""
    root = root_volume_id(instance)
    if root is not None and root in world.bad_volumes:
        return ScriptResult(2, "", f"{instance.id}: the faulty channel file is still there: "
                                   f"C:\\{CHANNEL_FILE_PATH}")
    if instance.id in world.sensor_stopped:
        return ScriptResult(3, "", f"{instance.id}: the Falcon sensor service CSFalconService "
                                   "is Stopped, not Running")
    return ScriptResult(0, f"{instance.id}: no faulty C-00000291*.sys; CSFalconService Running",
                        "")
