from __future__ import annotations

import json
from collections import Counter
from typing import Any

from remediate.sandbox import Fleet, FleetSpec, Sandbox

from .conftest import SMALL_FLEET


def test_fleet_has_the_requested_mix(ec2: Any, fleet: Fleet) -> None:
    kinds = Counter(t.kind for t in fleet.targets)
    assert kinds == {k: v for k, v in SMALL_FLEET.kind_counts().items() if v}
    assert len(fleet.workspaces) == 4
    assert {t.availability_zone for t in fleet.targets} == {"us-east-1a", "us-east-1b"}


def test_targets_are_tagged_windows_2019_with_the_bad_file(
    sandbox: Sandbox, ec2: Any, fleet: Fleet
) -> None:
    tagged = ec2.describe_instances(
        Filters=[{"Name": "tag:incident", "Values": ["crowdstrike-2024-07-19"]}]
    )
    ids = {i["InstanceId"] for r in tagged["Reservations"] for i in r["Instances"]}
    assert ids == set(fleet.instance_ids())
    setup = fleet.regions["us-east-1"]
    images = {i["ImageId"]: i for i in ec2.describe_images(ImageIds=[setup.target_ami])["Images"]}
    assert "2019" in images[setup.target_ami]["Name"]
    assert images[setup.target_ami]["Platform"] == "windows"
    assert len({setup.target_ami, setup.rescue_windows_ami, setup.rescue_linux_ami}) == 3
    assert all(sandbox.channel_file_present(t.root_volume_id) for t in fleet.targets)


def test_special_kinds_are_what_they_claim(ec2: Any, fleet: Fleet) -> None:
    def described(kind: str) -> dict[str, Any]:
        target = fleet.by_kind(kind)[0]
        found: dict[str, Any] = ec2.describe_instances(InstanceIds=[target.instance_id])[
            "Reservations"
        ][0]["Instances"][0]
        return found

    assert described("instance_store")["InstanceType"] == "m5d.large"
    assert described("spot_one_time")["InstanceLifecycle"] == "spot"
    assert described("hibernation")["HibernationOptions"] == {"Configured": True}
    assert described("marketplace")["ProductCodes"][0]["ProductCodeType"] == "marketplace"
    encrypted = fleet.by_kind("encrypted_bad_key")[0]
    volume = ec2.describe_volumes(VolumeIds=[encrypted.root_volume_id])["Volumes"][0]
    assert volume["Encrypted"] is True
    assert volume["KmsKeyId"] == fleet.regions["us-east-1"].bad_kms_key_id
    with_eip = [t for t in fleet.targets if t.elastic_ip]
    assert len(with_eip) == 1
    addresses = ec2.describe_addresses()["Addresses"]
    assert addresses[0]["InstanceId"] == with_eip[0].instance_id


def test_bad_kms_key_is_pending_deletion(sandbox: Sandbox, fleet: Fleet) -> None:
    kms = sandbox.client("kms")
    key = kms.describe_key(KeyId=fleet.regions["us-east-1"].bad_kms_key_id)["KeyMetadata"]
    assert key["KeyState"] == "PendingDeletion"


def test_fleet_spans_regions(sandbox: Sandbox) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=4, azs=1, regions=("us-east-1", "eu-west-1")))
    assert Counter(t.region for t in fleet.targets) == {"us-east-1": 2, "eu-west-1": 2}
    west = sandbox.client("ec2", "eu-west-1")
    west_ids = [t.instance_id for t in fleet.targets if t.region == "eu-west-1"]
    statuses = west.describe_instance_status(InstanceIds=west_ids)["InstanceStatuses"]
    assert {s["InstanceStatus"]["Status"] for s in statuses} == {"impaired"}


def test_each_region_has_awss_public_windows_ami_parameters_for_its_own_images(
    sandbox: Sandbox,
) -> None:
    regions = ("us-east-1", "eu-west-1")
    fleet = sandbox.build_fleet(FleetSpec(plain=2, azs=1, regions=regions))
    latest = "/aws/service/ami-windows-latest/Windows_Server-"
    for region in regions:
        found = sandbox.client("ssm", region).get_parameters_by_path(
            Path="/aws/service/ami-windows-latest")["Parameters"]
        setup = fleet.regions[region]
        assert {p["Name"]: (p["Value"], p["DataType"]) for p in found} == {
            f"{latest}2019-English-Full-Base": (setup.target_ami, "aws:ec2:image"),
            f"{latest}2022-English-Full-Base": (setup.rescue_windows_ami, "aws:ec2:image"),
        }
    assert fleet.regions["us-east-1"].rescue_windows_ami != (
        fleet.regions["eu-west-1"].rescue_windows_ami)


def test_fleet_serializes_to_json(fleet: Fleet) -> None:
    data = json.loads(fleet.to_json())
    assert len(data["targets"]) == len(fleet.targets)
    assert data["tag"] == ["incident", "crowdstrike-2024-07-19"]


def test_placements_put_each_target_in_its_az_and_a_workspace_may_be_healthy(
    sandbox: Sandbox,
) -> None:
    """What a forecast rebuilds (remediate.forecast): targets where the dry run found them."""
    fleet = sandbox.build_fleet(FleetSpec(
        plain=99, azs=3, workspaces=2, workspace_mix=("healthy", "reboot"),
        placements=(("plain", "us-east-1", 2), ("instance_store", "us-east-1", 0),
                    ("plain", "us-east-1", 2))))

    placed = Counter((t.kind, t.availability_zone) for t in fleet.targets)
    assert placed == {("plain", "us-east-1c"): 2, ("instance_store", "us-east-1a"): 1}
    spaces = sandbox.client("workspaces").describe_workspaces(
        WorkspaceIds=[w.workspace_id for w in fleet.workspaces])["Workspaces"]
    assert sorted(w["State"] for w in spaces) == ["AVAILABLE", "UNHEALTHY"]
