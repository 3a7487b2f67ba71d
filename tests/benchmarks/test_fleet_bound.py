"""The lower bound's arithmetic, checked against figures worked out by hand."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fleetbench.bound import (
    WAIT,
    Hop,
    bound,
    bound_over,
    charges,
    charges_for,
    offline_repair_path,
    path_for,
    reboot_first_path,
    target_paths,
    throughput,
)
from fleetbench.scenarios import Scenario
from remediate.clock import VirtualClock
from remediate.sandbox import Bucket, Durations, Sandbox


def test_the_offline_repair_bound_at_1000_targets_is_set_by_the_per_api_buckets() -> None:
    result = bound(offline_repair_path(Durations()), 1000)

    # The backup is not waited for (its 60 s end long before the path does); stop 15
    # (skipping the guest's OS shutdown) + detach 10 + attach 5 + repair 20 + detach 10
    # + attach 5 + start 60 + boot 60
    assert result.critical_path == 185
    detach = next(b for b in result.buckets if b.bucket == "ec2:DetachVolume")
    # DetachVolume's own bucket (AWS evaluates each API individually): 2 per target.
    # From the first detach (15 s in), 2,000 tokens: (2,000 - 50) / 5 = 390 s; after
    # the second detach (50 s in), attach, start and boot take 135 s.
    assert detach.tokens == 2000
    assert (detach.earliest, detach.drain, detach.tail) == (15, 390, 135)
    assert result.seconds == 540


def test_at_10000_targets_the_start_instances_resource_bucket_binds() -> None:
    result = bound(offline_repair_path(Durations()), 10_000)

    # 10,000 instances started, 1,000 burst then 2 a second: 4,500 s, from 65 s in
    # (the start hop), then start and boot: 120 s.
    assert (result.seconds, result.binding) == (4685, "ec2:resource:StartInstances")


def test_under_the_shared_category_model_the_mutating_bucket_binds() -> None:
    scenario = Scenario("offline-repair", 1000, throttle_model="shared-category")

    result = bound(offline_repair_path(Durations()), 1000, charges_for(scenario))

    mutating = next(b for b in result.buckets if b.bucket == "ec2:ec2.mutating")
    # StopInstances takes 1,000 ids a call: 1 token; then per target the capacity hold's
    # create, opening and cancel, 2 detach + 2 attach + 1 modify: 8 tokens. From the
    # first hold (0 s in), (8,001 - 50) / 5 = 1,590.2 s; after the modify (once the
    # instance runs), its boot takes 60 s.
    assert mutating.tokens == 8001
    assert (mutating.earliest, mutating.drain, mutating.tail) == (
        0, pytest.approx(1590.2), 60)
    assert (result.seconds, result.binding) == (pytest.approx(1650.2), "ec2:ec2.mutating")


def test_a_neighbour_slows_every_bucket_by_its_share() -> None:
    scenario = Scenario("offline-repair", 10_000, neighbour=0.5)

    result = bound(offline_repair_path(Durations()), 10_000, charges_for(scenario))

    assert result.seconds == 65 + 9000 / 1 + 120


def test_resource_buckets_count_instances_and_requests_count_batches() -> None:
    assert charges("ec2:StartInstances", 2500) == [
        ("ec2:StartInstances", Bucket(5, 2), 3.0),
        ("ec2:resource:StartInstances", Bucket(1000, 2), 2500.0)]
    assert charges("ec2:AttachVolume", 7) == [("ec2:AttachVolume", Bucket(50, 5), 7.0)]
    assert charges("ssm:SendCommand", 120) == [("ssm:SendCommand", Bucket(20, 5), 3.0)]


def test_a_small_fleet_is_bound_by_one_targets_critical_path() -> None:
    result = bound(reboot_first_path(Durations(), 2, settle=180.0), 100)

    # The first reboot holds the target for `settle` (its boot crashed), the second 60 s.
    assert (result.seconds, result.binding) == (240, "critical path")


def test_the_reboot_bound_reads_settle_from_the_playbook() -> None:
    path = path_for(Scenario("reboot-first", 10, reboots_to_fix=3), Durations())
    assert [hop.then for hop in path] == [180.0, 180.0, 60.0]


def test_the_binding_hop_is_the_one_that_leaves_the_least_slack() -> None:
    # 10 one-token calls at t=0, then 100 at t=50: a bucket of 10 + 1/s must refill
    # 100 tokens after t=50 (150 s), which beats 110 tokens from t=0 (100 s).
    path = (Hop("x:A", 50.0), Hop("x:B", 7.0))
    tokens = {"x:A": 10.0, "x:B": 100.0}
    bucket = Bucket(10, 1)

    result = bound(path, 1, charge=lambda call, n: [("b", bucket, tokens[call])])

    (only,) = result.buckets
    assert (only.earliest, only.drain, only.tail) == (50, 90, 7)
    assert result.seconds == 147


def test_throughput_is_the_slowest_buckets_refill_over_one_targets_spend() -> None:
    path = offline_repair_path(Durations())
    shared = charges_for(Scenario("offline-repair", 1, throttle_model="shared-category"))

    # One instance started per target, 2 a second; detach and attach allow 2.5 each.
    assert throughput(path) == pytest.approx(2.0, rel=1e-3)
    # 8 mutating tokens per target (StopInstances' share of a 1,000-id call aside).
    assert throughput(path, shared) == pytest.approx(5 / 8, rel=1e-3)

def test_over_drawn_durations_the_path_is_the_slowest_targets_and_buckets_the_fastest_hops(
        ) -> None:
    # Two targets: A then B. One is slow at A, the other at B; each sums to 30 s.
    slow_first = (Hop("x:A", 20.0), Hop("x:B", 10.0))
    slow_last = (Hop("x:A", 5.0), Hop("x:B", 25.0))
    bucket = Bucket(1, 1)

    result = bound_over([slow_first, slow_last], 11,
                        charge=lambda call, n: [("b", bucket, float(n))] if call == "x:B" else [])

    # Not 20 + 25: no target has both slow hops.
    assert result.critical_path == 30
    (only,) = result.buckets
    # B's 11 calls go no sooner than 5 s in (the earliest any target gets there), the
    # bucket refills 10 of them at 1/s, and the shortest tail after B is 10 s.
    assert (only.earliest, only.drain, only.tail) == (5, 10, 10)
    assert result.seconds == 30


def test_with_fixed_durations_the_bound_over_a_fleet_is_the_one_path_bound() -> None:
    path = offline_repair_path(Durations())
    assert bound_over([path, path, path], 1000) == bound(path, 1000)


def test_each_targets_path_has_the_durations_the_sandbox_gives_it(clock: VirtualClock) -> None:
    scenario = Scenario("offline-repair", 3)
    durations = Durations.realistic(seed=9)
    with Sandbox(clock=clock, durations=durations) as sandbox:
        fleet = sandbox.build_fleet(scenario.fleet_spec())
        ec2 = sandbox.client("ec2")
        paths = target_paths(scenario, durations, fleet.targets)
        for target, path in zip(fleet.targets, paths, strict=True):
            hops = {hop.call: hop.then for hop in path}
            snapshot = ec2.create_snapshot(VolumeId=target.root_volume_id)["SnapshotId"]
            # Not waited for on the path: what is left of it after the rest, if anything.
            completed = _seconds_until(clock, lambda s=snapshot: ec2.describe_snapshots(
                SnapshotIds=[s])["Snapshots"][0]["State"] == "completed")
            rest = sum(hop.then for hop in path[:-1])
            assert hops[f"{WAIT}backup-completed"] == pytest.approx(
                max(0.0, completed - rest), abs=1)
            assert completed > 60  # realistic: a first snapshot of the whole volume
            ec2.stop_instances(InstanceIds=[target.instance_id], SkipOsShutdown=True)
            assert _seconds_until(clock, lambda i=target.instance_id: _state(ec2, i) == "stopped"
                                  ) == pytest.approx(hops["ec2:StopInstances"], abs=1)
        stops = {next(hop.then for hop in path if hop.call == "ec2:StopInstances")
                 for path in paths}
        assert len(stops) == 3  # each target drew its own


def _state(ec2: Any, instance_id: str) -> str:
    return str(ec2.describe_instances(InstanceIds=[instance_id])
               ["Reservations"][0]["Instances"][0]["State"]["Name"])


def _seconds_until(clock: VirtualClock, done: Callable[[], bool]) -> float:
    started = clock.now()
    while not done():
        assert clock.now() - started < 5000
        clock.advance(1)
    return clock.now() - started
