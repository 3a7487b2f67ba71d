"""Adaptive pacing against the sandbox's throttle models (issue 15, item 2).

remediate paces to AWS's documented per-API buckets and learns from throttles
(remediate.aws.adaptive). Against the documented buckets it is hardly ever
throttled; against the older shared-category reading, or a neighbour spending 30%
of every bucket, it is throttled now and then, slows down, and still fixes every
target.
"""

from __future__ import annotations

import random

import pytest

from fleetbench.runner import run
from fleetbench.scenarios import SSM_BUCKETS, Scenario, Setup
from remediate.sandbox import Bucket, ThrottlePolicy

TARGETS = 100
SWAP = ("ec2:AttachVolume", "ec2:DetachVolume", "ec2:ModifyInstanceAttribute")


@pytest.mark.parametrize(("model", "neighbour", "most"), [
    ("documented", 0.0, 0.01),
    ("shared-category", 0.0, 0.05),
    ("documented", 0.3, 0.05),
])
def test_the_offline_repair_adapts_to_how_aws_shares_its_buckets(
        model: str, neighbour: float, most: float) -> None:
    random.seed(15)  # retries' full jitter: the same draws every run
    scenario = Scenario("offline-repair", TARGETS, throttle_model=model, neighbour=neighbour)

    m = run(scenario, "remediate", Setup(rescue_per_az=4))

    assert m.statuses == {"succeeded": TARGETS}
    assert (m.fixed, m.rescue_left) == (TARGETS, 0)
    assert m.throttled_share <= most, m.throttled_by_api
    # The swap's calls were made once per target each, and no more than that twice.
    assert [m.calls_by_api[api] for api in SWAP] == [2 * TARGETS, 2 * TARGETS, TARGETS]


def test_on_a_moving_clock_a_lowered_limit_is_learned_and_every_target_fixed() -> None:
    # AWS lowered AttachVolume's and DetachVolume's limits for this account to a tenth
    # of the documented 50/5; nothing in the playbook says so.
    lowered = ThrottlePolicy.aws_defaults({
        **SSM_BUCKETS,
        "ec2:AttachVolume": Bucket(5, 0.5),
        "ec2:DetachVolume": Bucket(5, 0.5),
    })
    random.seed(15)

    m = run(Scenario("offline-repair", 12), "remediate", Setup(rescue_per_az=1),
            speed=60.0, policy=lowered)

    assert (m.fixed, m.rescue_left) == (12, 0)
    assert [m.calls_by_api[api] for api in SWAP[:2]] == [24, 24]
    # Pacing to the documented rate and only emptying the bucket on a throttle (before
    # adapting) drew 50 throttles here (14 attaches, 36 detaches); learning the lower
    # rate for the rest of the run, about half as many. Only the bound is asserted: on a
    # moving clock a busy machine spends simulated seconds on each call, the buckets
    # refill meanwhile, and it draws fewer throttles (1 in a CI run on two busy cores);
    # the virtual-clock tests above show the adapting itself, run for run the same.
    throttled = sum(m.throttled_by_api.get(api, 0) for api in SWAP[:2])
    assert throttled <= 36
