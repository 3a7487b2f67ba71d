"""``--stop-on-alarm``: a CloudWatch alarm in ALARM stops the run starting targets.

The alarms are moto's (put_metric_alarm, set_alarm_state), read by the executor with
DescribeAlarms through the sandbox; the targets' end state is read from the sandbox.
"""

from __future__ import annotations

from typing import Any

import pytest
from executor_support import (
    NO_RETRIES,
    REGION,
    ec2_targets,
    events_of,
    fixed,
    playbook,
    rescue_instances,
    root_in_place,
    sandbox_clients,
    step,
    swap_playbook,
    tags_of,
    when,
)

from remediate.actions.contract import Target
from remediate.clock import Clock, ScaledClock, VirtualClock
from remediate.errors import UserError
from remediate.executor.alarm_watch import POLL_INTERVAL, AlarmNotFound, AlarmWatch
from remediate.executor.engine import Executor
from remediate.executor.events import (
    AlarmStopped,
    Event,
    EventBus,
    Notice,
    StepStarted,
    TargetStarted,
)
from remediate.executor.guards import BatchResult
from remediate.journal import Journal
from remediate.language.model import BatchSize, Guards
from remediate.reporters.lines import line
from remediate.reporters.markdown import MarkdownReport
from remediate.reporters.record import RunRecord
from remediate.sandbox import Durations, Fleet, FleetSpec, Sandbox

ALARM = "fleet-5xx"
REASON = "Threshold Crossed: 5xx above 50"


def put_alarm(sandbox: Sandbox, name: str = ALARM) -> Any:
    cloudwatch = sandbox.client("cloudwatch", REGION, config=NO_RETRIES)
    cloudwatch.put_metric_alarm(
        AlarmName=name, MetricName="5XXError", Namespace="AWS/ApplicationELB",
        Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=50.0,
        ComparisonOperator="GreaterThanThreshold")
    return cloudwatch


def watch(sandbox: Sandbox, clients: Any, clock: Clock, *names: str) -> AlarmWatch:
    alarms = AlarmWatch(names or (ALARM,), clients, [("default", REGION)], clock)
    alarms.check()
    return alarms


def swap_run(sandbox: Sandbox, fleet: Fleet, clients: Any, clock: Clock, bus: EventBus,
             alarms: AlarmWatch, tmp_path: Any, concurrency: int = 2) -> Executor:
    pb = swap_playbook(fleet.regions[REGION].rescue_windows_ami, concurrency=concurrency)
    targets = [Target("ec2-instance", t.instance_id, t.region) for t in fleet.targets]
    return Executor(pb, targets, clients=clients, clock=clock, bus=bus,
                    journal=Journal(tmp_path / "run.journal"), run_id="run-a", workers=4,
                    alarms=alarms)


def alarm_polls(sandbox: Sandbox) -> int:
    return sum(1 for call in sandbox.api_calls if call.operation == "DescribeAlarms")


def test_an_alarm_in_alarm_stops_new_targets_and_those_in_flight_finish(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event], tmp_path: Any) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=4, azs=1))
    cloudwatch = put_alarm(sandbox)
    record = RunRecord()
    bus.subscribe(record)
    executor = swap_run(sandbox, fleet, clients, clock, bus, watch(sandbox, clients, clock),
                        tmp_path)
    when(bus, lambda e: isinstance(e, StepStarted) and e.step_id == "attach",
         lambda: cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM",
                                            StateReason=REASON))

    result = executor.run()

    [stopped] = events_of(events, AlarmStopped)
    assert (stopped.alarm, stopped.account, stopped.region, stopped.in_flight) == (
        ALARM, "default", REGION, 2)
    assert stopped.reason == f"is in ALARM: {REASON}"
    assert line(stopped) == (f"alarm {ALARM} (default/{REGION}) is in ALARM: {REASON}: no "
                             "new targets will start; 2 targets in flight will finish")
    after = events[events.index(stopped):]
    assert events_of(after, TargetStarted) == []
    assert result.summary == {"succeeded": 2, "skipped": 2}
    assert result.stopped_by_alarm == f"alarm {ALARM} (default/{REGION}) is in ALARM: {REASON}"
    assert not result.ok and not result.interrupted
    started = {e.target.id for e in events_of(events, TargetStarted)}
    for target in fleet.targets:
        if target.instance_id in started:
            assert fixed(sandbox, target)
        else:  # never touched: still broken, its root volume where it was
            assert root_in_place(sandbox, target)
            assert sandbox.channel_file_present(target.root_volume_id)
            assert result.errors[f"default/{REGION}/{target.instance_id}"] == (
                f"not started: alarm {ALARM} (default/{REGION}) is in ALARM: {REASON}")
    assert rescue_instances(sandbox) == []
    # The reports say it: skipped (not failed), and why.
    summary = record.summary()
    assert (summary["failed"], summary["skipped"], summary["succeeded"]) == (0, 2, 2)
    assert record.as_dict()["stopped_by_alarm"] == {
        "alarm": ALARM, "account": "default", "region": REGION,
        "reason": f"is in ALARM: {REASON}", "in_flight": 2}
    markdown = MarkdownReport("-").render(record)
    assert (f"- **Stopped by alarm {ALARM}** (default/{REGION}, is in ALARM: {REASON}): no "
            "new targets were started; those in flight finished.") in markdown
    # Polled at the documented pace: one DescribeAlarms per POLL_INTERVAL of run time
    # (and the check before the run, the read before its one batch).
    assert alarm_polls(sandbox) <= clock.now() // POLL_INTERVAL + 3


def test_an_alarm_that_stays_ok_lets_the_run_finish_polling_at_its_pace(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event], tmp_path: Any) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=3, azs=1))
    put_alarm(sandbox)
    executor = swap_run(sandbox, fleet, clients, clock, bus, watch(sandbox, clients, clock),
                        tmp_path)

    result = executor.run()

    assert result.ok and result.summary == {"succeeded": 3}
    assert events_of(events, AlarmStopped) == []
    # One poll per POLL_INTERVAL from 0 to the end, plus the check before the run and the
    # read before its one batch.
    polls = alarm_polls(sandbox)
    assert clock.now() // POLL_INTERVAL + 1 <= polls <= clock.now() // POLL_INTERVAL + 3


def test_alarms_that_cannot_be_read_stop_the_run_after_three_polls_in_a_row(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event], tmp_path: Any) -> None:
    """As SSM's IgnorePollAlarmFailure (default false): an alarm that cannot be read
    stops the run, but one failed poll only warns."""
    fleet = sandbox.build_fleet(FleetSpec(plain=4, azs=1))
    put_alarm(sandbox)
    alarms = watch(sandbox, clients, clock)
    executor = swap_run(sandbox, fleet, clients, clock, bus, alarms, tmp_path, concurrency=1)
    when(bus, lambda e: isinstance(e, StepStarted) and e.step_id == "attach",
         lambda: sandbox.fail("DescribeAlarms", "Throttling", "Rate exceeded"))

    result = executor.run()

    warnings = [n.message for n in events_of(events, Notice) if "--stop-on-alarm" in n.message]
    assert len(warnings) == 2
    assert warnings[0].startswith(f"--stop-on-alarm: could not read alarm {ALARM} in "
                                  f"default/{REGION}: An error occurred (Throttling)")
    [stopped] = events_of(events, AlarmStopped)
    assert stopped.reason.startswith("could not be read 3 times in a row (An error occurred "
                                     "(Throttling)")
    assert result.summary == {"succeeded": 1, "skipped": 3}


def test_one_failed_poll_only_warns(sandbox: Sandbox, clients: Any, clock: VirtualClock,
                                    bus: EventBus, events: list[Event], tmp_path: Any) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=2, azs=1))
    put_alarm(sandbox)
    executor = swap_run(sandbox, fleet, clients, clock, bus, watch(sandbox, clients, clock),
                        tmp_path, concurrency=1)
    when(bus, lambda e: isinstance(e, StepStarted) and e.step_id == "attach",
         lambda: sandbox.fail("DescribeAlarms", "Throttling", "Rate exceeded", times=1))

    result = executor.run()

    assert result.ok and result.summary == {"succeeded": 2}
    assert len([n for n in events_of(events, Notice) if "--stop-on-alarm" in n.message]) == 1


def test_an_alarm_is_checked_before_the_run(sandbox: Sandbox, clients: Any,
                                            clock: VirtualClock) -> None:
    cloudwatch = put_alarm(sandbox)
    with pytest.raises(AlarmNotFound) as missing:
        watch(sandbox, clients, clock, ALARM, "fleet-5XX")
    assert str(missing.value) == (
        f"--stop-on-alarm fleet-5XX: no CloudWatch alarm of that name in default/{REGION} "
        "(DescribeAlarms); check the name (it is case-sensitive) with `aws cloudwatch "
        "describe-alarms --alarm-names fleet-5XX`")
    cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason=REASON)
    with pytest.raises(UserError) as firing:
        watch(sandbox, clients, clock)
    assert str(firing.value) == (
        f"--stop-on-alarm {ALARM}: the alarm is in ALARM already in default/{REGION} "
        f"({REASON}); nothing was started: try again once it is OK")


def test_on_a_moving_clock_the_alarm_stops_the_run_too(tmp_path: Any) -> None:
    """The run's clock moves by itself (as an operator's does): polls are due by the
    clock, not by simulated jumps. Each target is tagged, waits 2 minutes, is tagged
    again; the alarm fires while the first one waits."""
    # Fast enough for a test (2 simulated minutes in 0.6 s), slow enough that a busy
    # machine's pause is no step timeout.
    clock = ScaledClock(200.0)
    with Sandbox(clock=clock, durations=Durations()) as sandbox:
        clients = sandbox_clients(sandbox)
        ids = sandbox.build_fleet(FleetSpec(plain=3, azs=1)).instance_ids()
        cloudwatch = put_alarm(sandbox)
        events: list[Event] = []
        bus = EventBus()
        bus.subscribe(events.append)
        pb = playbook(step("before", "test.tag", {"key": "before"}),
                      step("wait", "control.pause", {"duration": 120.0}),
                      step("after", "test.tag", {"key": "after"}), concurrency=1)
        executor = Executor(pb, ec2_targets(ids), clients=clients, clock=clock, bus=bus,
                            journal=Journal(tmp_path / "run.journal"), run_id="run-m",
                            workers=4, alarms=watch(sandbox, clients, clock))
        when(bus, lambda e: isinstance(e, StepStarted) and e.step_id == "wait",
             lambda: cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM",
                                                StateReason=REASON))

        result = executor.run()

        assert result.summary == {"succeeded": 1, "skipped": 2}, result.errors
        [stopped] = events_of(events, AlarmStopped)
        assert stopped.in_flight == 1
        [first] = [t.target.id for t in events_of(events, TargetStarted)]
        assert {i: set(tags_of(sandbox, i)) for i in ids} == {
            i: {"before", "after"} if i == first else set() for i in ids}


def test_an_alarm_that_fired_while_the_operator_looked_at_the_canary_stops_the_rest(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event], tmp_path: Any) -> None:
    """The question after the canary blocks the run for as long as a human takes; an
    alarm that went off meanwhile is read before the next batch starts anything."""
    ids = sandbox.build_fleet(FleetSpec(plain=4, azs=1)).instance_ids()
    cloudwatch = put_alarm(sandbox)

    def confirm(batch: BatchResult) -> bool:
        cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason=REASON)
        clock.advance(60.0)  # a minute to read the canary's outcome and answer
        return True

    canary_first = Guards(batches=(BatchSize(1), BatchSize(percent=100.0)))
    pb = playbook(step("tag", "test.tag"), guards=canary_first, concurrency=4)
    executor = Executor(pb, ec2_targets(ids), clients=clients, clock=clock, bus=bus,
                        journal=Journal(tmp_path / "run.journal"), run_id="run-c",
                        confirm=confirm, alarms=watch(sandbox, clients, clock))

    result = executor.run()

    assert result.summary == {"succeeded": 1, "skipped": 3}
    assert len(events_of(events, TargetStarted)) == 1
    [stopped] = events_of(events, AlarmStopped)
    assert stopped.in_flight == 0


def test_an_alarm_after_every_target_started_stops_nothing_and_fails_nothing(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event], tmp_path: Any) -> None:
    ids = sandbox.build_fleet(FleetSpec(plain=3, azs=1)).instance_ids()
    cloudwatch = put_alarm(sandbox)
    pb = playbook(step("wait", "control.pause", {"duration": 60.0}), concurrency=3)
    executor = Executor(pb, ec2_targets(ids), clients=clients, clock=clock, bus=bus,
                        journal=Journal(tmp_path / "run.journal"), run_id="run-l",
                        alarms=watch(sandbox, clients, clock))
    when(bus, lambda e: isinstance(e, StepStarted), lambda: cloudwatch.set_alarm_state(
        AlarmName=ALARM, StateValue="ALARM", StateReason=REASON))

    result = executor.run()

    [stopped] = events_of(events, AlarmStopped)  # said, and ...
    assert stopped.in_flight == 3
    assert result.ok and result.stopped_by_alarm is None  # ... nothing was left unstarted
    assert result.summary == {"succeeded": 3}


def test_more_alarms_than_one_request_takes_are_read_100_a_request(
        sandbox: Sandbox, clients: Any, clock: VirtualClock) -> None:
    """DescribeAlarms takes at most 100 AlarmNames."""
    names = [f"alarm-{n:03d}" for n in range(101)]
    for name in names:
        put_alarm(sandbox, name)
    sandbox.reset_api_calls()

    watch(sandbox, clients, clock, *names)

    calls = [c for c in sandbox.api_calls if c.operation == "DescribeAlarms"]
    assert [sum(1 for n in names if c.names(n)) for c in calls] == [100, 1]
