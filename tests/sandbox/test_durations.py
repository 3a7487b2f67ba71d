"""Realistic durations: seeded spreads AWS's figures allow, drawn per resource."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from remediate.clock import ScaledClock, VirtualClock
from remediate.sandbox import Durations, FleetSpec, Sandbox

from .conftest import NO_RETRIES, state_of


def _first_time(clock: VirtualClock, done: Callable[[], bool], step: float = 1.0,
                limit: float = 4000.0) -> float:
    """Seconds on ``clock`` until ``done()`` holds, read every ``step`` seconds."""
    started = clock.now()
    while not done():
        assert clock.now() - started < limit, "never happened"
        clock.advance(step)
    return clock.now() - started


@pytest.fixture
def realistic(clock: VirtualClock) -> Any:
    with Sandbox(clock=clock, durations=Durations.realistic(seed=3)) as sandbox:
        yield sandbox


def _status(ec2: Any, instance_id: str) -> str:
    statuses = ec2.describe_instance_status(InstanceIds=[instance_id], IncludeAllInstances=True)
    return str(statuses["InstanceStatuses"][0]["InstanceStatus"]["Status"])


def _healthy(sandbox: Sandbox, count: int) -> list[str]:
    """``count`` Windows instances launched now with a clean disk (pending)."""
    setup = sandbox.build_fleet(FleetSpec(plain=1)).regions["us-east-1"]
    ec2 = sandbox.client("ec2", config=NO_RETRIES)
    launched = ec2.run_instances(ImageId=setup.rescue_windows_ami, InstanceType="m5.large",
                                 MinCount=count, MaxCount=count,
                                 SubnetId=next(iter(setup.subnets.values())))
    return [i["InstanceId"] for i in launched["Instances"]]


def test_windows_takes_two_to_five_minutes_from_start_to_passing_status_checks(
        realistic: Sandbox, clock: VirtualClock) -> None:
    ids = _healthy(realistic, 12)
    ec2 = realistic.client("ec2", config=NO_RETRIES)
    started = clock.now()
    ok: dict[str, float] = {}
    while len(ok) < len(ids) and clock.now() - started < 400:
        clock.advance(1)
        ok.update({i: clock.now() - started for i in ids
                   if i not in ok and _status(ec2, i) == "ok"})
    assert len(ok) == len(ids)
    assert all(120 <= t <= 301 for t in ok.values()), ok
    assert max(ok.values()) - min(ok.values()) > 30, "every instance took the same time"


def test_a_crash_looping_guest_stops_slowly_unless_the_os_shutdown_is_skipped(
        realistic: Sandbox, clock: VirtualClock) -> None:
    fleet = realistic.build_fleet(FleetSpec(plain=4))
    ec2 = realistic.client("ec2", config=NO_RETRIES)
    slow, fast = fleet.targets[0].instance_id, fleet.targets[1].instance_id
    ec2.stop_instances(InstanceIds=[slow])
    ec2.stop_instances(InstanceIds=[fast], SkipOsShutdown=True)
    started = clock.now()
    took = _first_time(clock, lambda: state_of(ec2, fast) == "stopped")
    assert 15 <= took <= 46
    assert state_of(ec2, slow) == "stopping"
    took = _first_time(clock, lambda: state_of(ec2, slow) == "stopped") + took
    assert 240 <= clock.now() - started <= 721


def test_a_first_snapshot_takes_time_by_size_and_a_later_one_a_tenth(
        realistic: Sandbox, clock: VirtualClock) -> None:
    ec2 = realistic.client("ec2", config=NO_RETRIES)
    sizes = {ec2.create_volume(AvailabilityZone="us-east-1a", Size=size)["VolumeId"]: size
             for size in (30, 100)}

    def snapshot_seconds(volume_id: str) -> float:
        snapshot_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
        return _first_time(clock, lambda: ec2.describe_snapshots(
            SnapshotIds=[snapshot_id])["Snapshots"][0]["State"] == "completed")

    for volume_id, size in sizes.items():
        first = snapshot_seconds(volume_id)
        assert 10 + 6 * size <= first <= 31 + 20 * size
        assert snapshot_seconds(volume_id) == pytest.approx(first / 10, abs=1)


def test_an_ssm_command_runs_twenty_to_sixty_seconds(
        realistic: Sandbox, clock: VirtualClock) -> None:
    ids = _healthy(realistic, 6)
    clock.advance(300)
    ssm = realistic.client("ssm", config=NO_RETRIES)
    took = []
    for instance_id in ids:
        command = ssm.send_command(InstanceIds=[instance_id],
                                   DocumentName="AWS-RunPowerShellScript",
                                   Parameters={"commands": ["hostname"]})["Command"]
        took.append(_first_time(clock, lambda cid=command["CommandId"], iid=instance_id:
                                ssm.get_command_invocation(CommandId=cid, InstanceId=iid)
                                ["Status"] == "Success"))
    assert all(20 <= t <= 61 for t in took), took
    assert len(set(took)) > 1


def test_draws_follow_the_seed_and_the_resource_not_the_order_of_calls() -> None:
    one, same, other = (Durations.realistic(seed=1), Durations.realistic(seed=1),
                        Durations.realistic(seed=2))
    keys = [f"i-{n:017x}" for n in range(50)]
    forward = [one.draw("instance_boot", k) for k in keys]
    assert [same.draw("instance_boot", k) for k in reversed(keys)] == forward[::-1]
    assert [other.draw("instance_boot", k) for k in keys] != forward
    assert all(100 <= s < 240 for s in forward)


def test_fixed_durations_stay_fixed_unless_asked() -> None:
    fixed = Durations()
    assert fixed.draw("instance_boot", "i-1") == 60.0
    assert fixed.stop("i-1", stuck=True) == fixed.stop("i-1", stuck=False) == 90.0
    assert fixed.snapshot_of("vol-1", 100, first=True) == 60.0


def test_the_realistic_spread_on_a_moving_clock() -> None:
    """A ScaledClock, as ``remediate demo`` and ``sandbox serve`` run it: the skipped
    shutdown is over (<= 45 s) long before the stuck guest's (>= 240 s)."""
    clock = ScaledClock(60.0)
    with Sandbox(clock=clock, durations=Durations.realistic(seed=5)) as sandbox:
        fleet = sandbox.build_fleet(FleetSpec(plain=2))
        ec2 = sandbox.client("ec2", config=NO_RETRIES)
        slow, fast = (t.instance_id for t in fleet.targets)
        ec2.stop_instances(InstanceIds=[slow])
        ec2.stop_instances(InstanceIds=[fast], SkipOsShutdown=True)
        while state_of(ec2, fast) != "stopped":
            clock.sleep_until(clock.now() + 1)
        assert state_of(ec2, slow) == "stopping"
