"""Every target's root volume has a recent completed snapshot, so route 3 is possible.

Route 3 (``ec2-replace-root-volume.yaml --param snapshot_id=``) restores a root
volume from a snapshot of it taken before the incident. Whoever took it (AWS Backup,
Data Lifecycle Manager, a script, a person), it is found the same way: the account's
own snapshots of that volume (DescribeSnapshots, ``OwnerIds=self``: one scan of the
Region, which the snapshot quota check counts too). Only a ``completed`` snapshot can
be restored (a ``pending`` one is not usable yet, an ``error`` one never); its age is
from its ``StartTime``, the point in time it holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from remediate.readiness.check import Check, Settings, Verdict
from remediate.readiness.model import Rule
from remediate.readiness.region import Region

FRESH = Rule("root-snapshot-fresh", "The root volume has a recent snapshot",
             "Replacing the root volume from a snapshot (route 3) needs a completed "
             "snapshot from before the incident; an old one loses what was written since.")


def newest_snapshots(region: Region, volume_ids: set[str]) -> dict[str, datetime]:
    """Volume id -> StartTime of its newest completed snapshot owned by the account."""
    newest: dict[str, datetime] = {}
    for snapshot in region.snapshots:
        volume, started = snapshot.get("VolumeId"), snapshot.get("StartTime")
        if volume in volume_ids and started and snapshot.get("State") == "completed" \
                and (volume not in newest or started > newest[volume]):
            newest[volume] = started
    return newest


def _age(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.0f}h" if hours < 48 else f"{hours / 24:.0f}d"


def run(region: Region, settings: Settings) -> Iterator[Verdict]:
    roots = {i.id: i.root_volume_id for i in region.instances if i.root_volume_id}
    newest = newest_snapshots(region, set(roots.values()))
    now = region.clock.wall()
    failures = []
    for instance_id, volume in roots.items():
        started = newest.get(volume)
        if started is not None \
                and (now - started).total_seconds() <= settings.max_snapshot_age:
            continue
        said = "has no completed snapshot" if started is None else \
            f"has no snapshot newer than {settings.max_snapshot_age_text} (newest " \
            f"{_age((now - started).total_seconds())} old)"
        failures.append(region.fail(
            FRESH, instance_id, f"root volume {volume} of {instance_id} {said}",
            f"snapshot it now (aws ec2 create-snapshot --volume-id {volume} --region "
            f"{region.scope.region}) and keep it fresh with an AWS Backup plan or a Data "
            "Lifecycle Manager policy"))
    yield Verdict(FRESH, len(roots), failures)


CHECK = Check((FRESH,), run)
