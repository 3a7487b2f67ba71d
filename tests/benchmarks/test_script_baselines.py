"""The honest baselines: a tuned boto3 script and a model of SSM Automation's route,
run for real (boto3 against the sandbox), judged by the sandbox's end state."""

from __future__ import annotations

from collections import Counter

from fleetbench.runner import run
from fleetbench.scenarios import SSM_BUCKETS, Scenario, Setup
from fleetbench.script import ssm_automation, tuned_script
from fleetbench.threadclock import ThreadedVirtualClock, botocore_sleeps
from remediate.clock import ScaledClock
from remediate.sandbox import Bucket, Durations, Sandbox, ThrottlePolicy


def test_the_tuned_script_fixes_every_target_and_leaves_no_rescue_instance() -> None:
    # Fixed durations: with realistic ones a crash-looping guest's stop may outlast
    # boto3's instance_stopped waiter (40 polls of 15 s), as it would on AWS.
    m = run(Scenario("offline-repair", 6), "tuned-script", Setup(), workers=3,
            durations=Durations())

    assert (m.fixed, m.rescue_left, m.workers) == (6, 0, 3)
    assert m.statuses == {"finished": 6}
    ops = Counter(api.split(":")[1] for api in m.calls_by_api for _ in
                  range(m.calls_by_api[api]))
    assert (ops["DetachVolume"], ops["AttachVolume"], ops["StartInstances"]) == (12, 12, 6)
    # 3 workers, 6 targets: two rounds of one target's path at the least.
    assert m.makespan >= 2 * (Durations().instance_stop + Durations().instance_start)


def test_the_tuned_script_rides_out_throttling_with_standard_retries() -> None:
    tight = ThrottlePolicy.aws_defaults({**SSM_BUCKETS, "ec2:StartInstances": Bucket(1, 0.2)})

    m = run(Scenario("offline-repair", 4), "tuned-script", Setup(), workers=4, policy=tight,
            durations=Durations())

    assert m.throttled_by_api.get("ec2:StartInstances", 0) > 0
    assert m.statuses == {"finished": 4}
    assert (m.fixed, m.rescue_left) == (4, 0)


def test_a_script_gives_up_on_a_target_when_retries_run_out_and_says_why() -> None:
    never = ThrottlePolicy.aws_defaults({**SSM_BUCKETS, "ec2:StartInstances": Bucket(1, 1e-6)})

    m = run(Scenario("offline-repair", 3), "tuned-script", Setup(), workers=3, policy=never,
            durations=Durations())

    assert m.statuses == {"finished": 1, "failed: RequestLimitExceeded": 2}
    assert m.fixed == 1


def test_the_ssm_automation_model_launches_and_terminates_a_helper_per_target() -> None:
    m = run(Scenario("offline-repair", 4), "ssm-automation", Setup(), durations=Durations())

    assert (m.fixed, m.rescue_left, m.workers) == (4, 0, 100)
    assert m.calls_by_api["ec2:RunInstances"] == 4
    assert m.calls_by_api["ec2:TerminateInstances"] == 4


def test_ssm_automation_runs_at_most_its_concurrency_at_once() -> None:
    clock = ThreadedVirtualClock()
    with Sandbox(clock=clock, durations=Durations()) as sandbox:
        fleet = sandbox.build_fleet(Scenario("offline-repair", 4).fleet_spec())
        with botocore_sleeps(clock):
            result = ssm_automation(sandbox, fleet, clock, concurrency=2)
        runs = [c.at for c in sandbox.api_calls if c.operation == "RunInstances"]

    assert result.failures == {}
    # Two executions at a time: the third helper is launched only after a whole swap.
    assert sorted(runs)[2] - sorted(runs)[0] >= Durations().instance_stop


def test_the_tuned_script_runs_on_a_moving_clock_too() -> None:
    clock = ScaledClock(400)
    with Sandbox(clock=clock, durations=Durations()) as sandbox:
        fleet = sandbox.build_fleet(Scenario("offline-repair", 2).fleet_spec())
        with botocore_sleeps(clock):
            result = tuned_script(sandbox, fleet, clock, workers=2)
        states = [i["State"]["Name"] for r in sandbox.client("ec2").describe_instances(
            InstanceIds=[t.instance_id for t in fleet.targets])["Reservations"]
            for i in r["Instances"]]

    assert result.failures == {}
    assert states == ["running", "running"]
