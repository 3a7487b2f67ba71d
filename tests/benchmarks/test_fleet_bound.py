"""The lower bound's arithmetic, checked against figures worked out by hand."""

from __future__ import annotations

import pytest

from fleetbench.bound import (
    Hop,
    bound,
    charges,
    offline_repair_path,
    path_for,
    reboot_first_path,
    throughput,
)
from fleetbench.scenarios import Scenario
from remediate.sandbox import Bucket, Durations


def test_the_offline_repair_bound_at_1000_targets_is_set_by_the_mutating_bucket() -> None:
    result = bound(offline_repair_path(Durations()), 1000)

    # snapshot 60 + stop 90 + detach 10 + attach 5 + repair 20 + detach 10 + attach 5
    # + start 60 + boot 60
    assert result.critical_path == 320
    mutating = next(b for b in result.buckets if b.bucket == "ec2 mutating")
    # StopInstances takes 1,000 ids a call: 1 token; then 2 detach + 2 attach + 1 modify
    # per target. From the first detach (150 s in), 5,000 tokens: (5,000 - 50) / 5 = 990 s;
    # after the modify, start and boot take 120 s.
    assert mutating.tokens == 5001
    assert (mutating.earliest, mutating.drain, mutating.tail) == (150, 990, 120)
    assert result.seconds == 1260
    assert result.binding == "ec2 mutating"


def test_resource_buckets_count_instances_and_requests_count_batches() -> None:
    assert charges("ec2:StartInstances", 2500) == [
        ("ec2 run-start", Bucket(5, 2), 3.0),
        ("ec2 StartInstances instances", Bucket(1000, 2), 2500.0)]
    assert charges("ec2:AttachVolume", 7) == [("ec2 mutating", Bucket(50, 5), 7.0)]
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
    # 5 mutating tokens per target (StopInstances' share of a 1,000-id call aside).
    assert throughput(offline_repair_path(Durations())) == pytest.approx(1.0, rel=1e-3)
