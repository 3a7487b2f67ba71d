from __future__ import annotations

from typing import Any

from remediate.clock import VirtualClock
from remediate.sandbox import Fleet


def test_disable_api_stop_can_be_read_and_cleared(
    ec2: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    protected = fleet.by_kind("stop_protected")[0].instance_id
    read = ec2.describe_instance_attribute(InstanceId=protected, Attribute="disableApiStop")
    assert read["DisableApiStop"] == {"Value": True}
    ec2.modify_instance_attribute(InstanceId=protected, DisableApiStop={"Value": False})
    read = ec2.describe_instance_attribute(InstanceId=protected, Attribute="disableApiStop")
    assert read["DisableApiStop"] == {"Value": False}
    ec2.stop_instances(InstanceIds=[protected])
    clock.advance(90)
    state = ec2.describe_instances(InstanceIds=[protected])["Reservations"][0]["Instances"][0]
    assert state["State"]["Name"] == "stopped"


def test_delete_on_termination_round_trips(ec2: Any, fleet: Fleet) -> None:
    target = fleet.by_kind("plain")[0]
    ec2.modify_instance_attribute(
        InstanceId=target.instance_id,
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"DeleteOnTermination": False}}],
    )
    read = ec2.describe_instance_attribute(
        InstanceId=target.instance_id, Attribute="blockDeviceMapping"
    )
    (mapping,) = read["BlockDeviceMappings"]
    assert mapping["DeviceName"] == "/dev/sda1"
    assert mapping["Ebs"]["VolumeId"] == target.root_volume_id
    assert mapping["Ebs"]["DeleteOnTermination"] is False
