

def test_platform_filter_selects_windows_instances() -> None:
    from remediate.clock import VirtualClock
    from remediate.sandbox import FleetSpec, Sandbox

    with Sandbox(clock=VirtualClock()) as sb:
        fleet = sb.build_fleet(FleetSpec(plain=2, azs=1))
        found = sb.client("ec2").describe_instances(
            Filters=[{"Name": "platform", "Values": ["windows"]}])
        ids = {i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]}
        assert ids == set(fleet.instance_ids())
