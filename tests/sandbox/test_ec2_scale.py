"""The scaling patches answer exactly what moto (and AWS) would, only without the scans."""

from __future__ import annotations

from typing import Any

from remediate.sandbox import Fleet, FleetSpec, Sandbox


def _ids(response: dict[str, Any], key: str, field: str) -> set[str]:
    return {item[field] for item in response[key]}


def test_volumes_filtered_by_exact_ids_are_those_ids_and_the_other_filters_apply(
        sandbox: Sandbox, ec2: Any) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=3, azs=1))
    first, second, third = (t.root_volume_id for t in fleet.targets)
    ec2.stop_instances(InstanceIds=[fleet.targets[2].instance_id])

    def volumes(*filters: dict[str, Any]) -> set[str]:
        return _ids(ec2.describe_volumes(Filters=list(filters)), "Volumes", "VolumeId")

    assert volumes({"Name": "volume-id", "Values": [first, second, "vol-0000000000000dead"]}
                   ) == {first, second}
    assert volumes({"Name": "volume-id", "Values": [first, third]},
                   {"Name": "availability-zone", "Values": ["us-east-1b"]}) == set()
    assert volumes({"Name": "volume-id", "Values": [first, third]},
                   {"Name": "attachment.device", "Values": ["/dev/sda1"]}) == {first, third}
    # A pattern is matched as moto matches it (no shortcut).
    assert volumes({"Name": "volume-id", "Values": [first[:-3] + "*"]}) == {first}


def test_snapshots_filtered_by_volume_or_snapshot_id_with_tags(
        sandbox: Sandbox, ec2: Any, fleet: Fleet) -> None:
    volume_id = fleet.targets[0].root_volume_id
    tagged = ec2.create_snapshot(VolumeId=volume_id, TagSpecifications=[
        {"ResourceType": "snapshot", "Tags": [{"Key": "purpose", "Value": "backup"}]}])
    plain = ec2.create_snapshot(VolumeId=volume_id)
    other = ec2.create_snapshot(VolumeId=fleet.targets[1].root_volume_id)

    def snapshots(*filters: dict[str, Any]) -> set[str]:
        return _ids(ec2.describe_snapshots(OwnerIds=["self"], Filters=list(filters)),
                    "Snapshots", "SnapshotId")

    assert snapshots({"Name": "volume-id", "Values": [volume_id]}) == {
        tagged["SnapshotId"], plain["SnapshotId"]}
    assert snapshots({"Name": "tag:purpose", "Values": ["backup"]},
                     {"Name": "volume-id", "Values": [volume_id]}) == {tagged["SnapshotId"]}
    assert snapshots({"Name": "snapshot-id", "Values": [other["SnapshotId"], "snap-0dead"]}
                     ) == {other["SnapshotId"]}
