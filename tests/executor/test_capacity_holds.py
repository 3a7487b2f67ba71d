"""Capacity held across the stop (issue 18, part 3): ``ec2.stop`` with ``hold_capacity``
reserves each target's capacity before stopping it, the start lands in that reservation
and releases it, and every run (Ctrl-C and resume included) ends holding nothing."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from executor_support import (
    ec2_targets,
    events_of,
    playbook,
    sandbox_clients,
    step,
    when,
)

from remediate.clock import Clock, ScaledClock, VirtualClock
from remediate.executor.engine import Executor, RunResult
from remediate.executor.events import (
    BatchFinished,
    Event,
    EventBus,
    Notice,
    RollbackStarted,
    StepFinished,
    StepStarted,
    TargetFinished,
)
from remediate.executor.resume import resume
from remediate.journal import Journal
from remediate.language.model import Step
from remediate.sandbox import Durations, FleetSpec, Sandbox

AZ = "us-east-1a"
FAST = Durations(instance_start=2.0, instance_stop=2.0, instance_boot=2.0)
HOLD = step("stop", "ec2.stop", {"hold_capacity": True})
PAUSE = step("pause", "control.pause", {"duration": 600.0})
START = step("start", "ec2.start")
BROKEN = step("broken", "control.fail", {"message": "repair failed"})


def holds(sandbox: Sandbox) -> Counter[str]:
    """The account's Capacity Reservations, counted by state."""
    found = sandbox.client("ec2").describe_capacity_reservations()["CapacityReservations"]
    return Counter(r["State"] for r in found)


def calls(sandbox: Sandbox, operation: str) -> int:
    return sum(1 for c in sandbox.api_calls
               if c.operation == operation and not c.throttled and not c.dry_run)


def started(sandbox: Sandbox, instance_id: str) -> int:
    """How many StartInstances named the instance."""
    return sum(1 for c in sandbox.api_calls if c.operation == "StartInstances"
               and not c.throttled and c.names(instance_id))


def state(sandbox: Sandbox, instance_id: str) -> str:
    found = sandbox.client("ec2").describe_instances(InstanceIds=[instance_id])
    return str(found["Reservations"][0]["Instances"][0]["State"]["Name"])


def executor(sandbox: Sandbox, clock: Clock, ids: list[str], *steps: Step,
             rollback: tuple[Step, ...] = (), journal: Journal | None = None,
             bus: EventBus | None = None) -> Executor:
    return Executor(playbook(*steps, rollback=rollback), ec2_targets(ids),
                    clients=sandbox_clients(sandbox), clock=clock, bus=bus or EventBus(),
                    journal=journal or Journal.memory(), run_id="run-h")


def run(sandbox: Sandbox, clock: Clock, ids: list[str], *steps: Step,
        rollback: tuple[Step, ...] = ()) -> RunResult:
    return executor(sandbox, clock, ids, *steps, rollback=rollback).run()


def ctrl_c_twice_at(bus: EventBus, run_: Executor, step_id: str) -> None:
    """The operator presses Ctrl-C twice as soon as a step ``step_id`` starts."""

    def ctrl_c_twice() -> None:
        run_.request_stop()
        run_.request_stop()

    when(bus, lambda e: isinstance(e, StepStarted) and e.step_id == step_id, ctrl_c_twice)


@pytest.mark.parametrize("clock", [VirtualClock(), ScaledClock(100.0)],
                         ids=["virtual", "moving"])
def test_every_stopped_target_starts_in_its_reservation_when_the_az_runs_out(
        clock: Clock) -> None:
    with Sandbox(clock=clock, durations=FAST) as sandbox:
        ids = sandbox.build_fleet(FleetSpec(plain=3, azs=1)).instance_ids()
        # Every target stopped (2s each) and held long before; the AZ runs out of
        # m5.large while they are stopped: others take every free one.
        sandbox.set_capacity("m5.large", AZ, 0, at=clock.now() + 300)

        result = run(sandbox, clock, ids, HOLD, PAUSE, START)

        assert result.summary == {"succeeded": 3}
        assert {state(sandbox, i) for i in ids} == {"running"}
        # One reservation per target, opened for its start, then cancelled.
        assert sandbox.capacity_reservations_created == 3
        assert calls(sandbox, "ModifyCapacityReservation") == 3
        # Each started by its first StartInstances: none was refused.
        assert [started(sandbox, i) for i in ids] == [1, 1, 1]
        assert holds(sandbox) == Counter({"cancelled": 3})


REFUSED_HOLD = (
    "could not hold capacity for {target} (m5.large, Windows, us-east-1a), so it was not "
    "stopped and is as it was: run again later, or set hold_capacity: false to stop it "
    "without a reservation (it may then not start again while the AZ has no capacity). "
    "AWS said: InsufficientInstanceCapacity: We currently do not have sufficient m5.large "
    "capacity in the Availability Zone you requested (us-east-1a). Our system will be "
    "working on provisioning additional capacity. You can currently get m5.large capacity "
    "by not specifying an Availability Zone in your request or choosing other Availability "
    "Zones.")
BACKUP = step("backup", "ec2.snapshot_root", {"wait": False})
PUT_BACK = step("put_back", "ec2.start")


@pytest.mark.parametrize("clock", [VirtualClock(), ScaledClock(100.0)],
                         ids=["virtual", "moving"])
def test_a_target_whose_capacity_cannot_be_reserved_is_not_stopped_and_ends_refused(
        clock: Clock) -> None:
    events: list[Event] = []
    bus = EventBus()
    bus.subscribe(events.append)
    with Sandbox(clock=clock, durations=FAST) as sandbox:
        [target] = sandbox.build_fleet(FleetSpec(plain=1, azs=1)).instance_ids()
        sandbox.set_capacity("m5.large", AZ, 0)

        # The backup before the stop is no change to undo: the target is untouched.
        result = executor(sandbox, clock, [target], BACKUP, HOLD, START,
                          rollback=(PUT_BACK,), bus=bus).run()

        key = f"default/us-east-1/{target}"
        assert result.summary == {"refused": 1}
        assert result.errors[key] == "step stop refused: " + REFUSED_HOLD.format(
            target=target)
        # No rollback step ran; the step says why it failed; the batch counts it refused.
        assert events_of(events, RollbackStarted) == []
        assert [(e.step_id, e.status, e.rollback) for e in events_of(events, StepFinished)
                ] == [("backup", "succeeded", False), ("stop", "failed", False)]
        [finished] = events_of(events, TargetFinished)
        assert (finished.status, finished.rolled_back) == ("refused", False)
        [batch] = events_of(events, BatchFinished)
        assert (batch.succeeded, batch.failed, batch.rolled_back, batch.others) == (
            0, 0, 0, (("refused", 1),))
        assert state(sandbox, target) == "running"
        assert calls(sandbox, "StopInstances") == calls(sandbox, "StartInstances") == 0
        assert sandbox.capacity_reservations_created == 0


def test_a_refused_hold_after_a_step_that_changed_the_target_is_rolled_back(
        sandbox: Sandbox, clock: VirtualClock, events: list[Event], bus: EventBus) -> None:
    [target] = sandbox.build_fleet(FleetSpec(plain=1, azs=1)).instance_ids()
    sandbox.set_capacity("m5.large", AZ, 0)
    # A reboot changed the target before the stop was refused: that is for the rollback.
    reboot = step("reboot", "ec2.reboot", {"times": 1, "verify": False, "timeout": "1m"})

    result = executor(sandbox, clock, [target], reboot, HOLD, START,
                      rollback=(PUT_BACK,), bus=bus).run()

    assert result.summary == {"rolled_back": 1}
    assert result.errors[f"default/us-east-1/{target}"] == (
        "step stop failed: " + REFUSED_HOLD.format(target=target))
    assert [e.step_id for e in events_of(events, StepFinished) if e.rollback] == ["put_back"]
    assert state(sandbox, target) == "running"
    assert calls(sandbox, "StopInstances") == 0


def test_a_rollback_after_the_stop_starts_the_target_in_its_reservation(
        sandbox: Sandbox, clock: VirtualClock) -> None:
    [target] = sandbox.build_fleet(FleetSpec(plain=1, azs=1)).instance_ids()
    sandbox.set_capacity("m5.large", AZ, 0, at=clock.now() + 300)

    result = run(sandbox, clock, [target], HOLD, PAUSE,
                 BROKEN, rollback=(step("put_back", "ec2.start"),))

    assert result.summary == {"rolled_back": 1}
    assert state(sandbox, target) == "running"
    assert holds(sandbox) == Counter({"cancelled": 1})


def set_preference(sandbox: Sandbox, clock: VirtualClock, instance_id: str,
                   spec: dict[str, Any]) -> None:
    """The instance's own Capacity Reservation settings, changed as AWS allows: stopped."""
    ec2 = sandbox.client("ec2")
    ec2.stop_instances(InstanceIds=[instance_id])
    clock.advance(600)
    ec2.modify_instance_capacity_reservation_attributes(
        InstanceId=instance_id, CapacityReservationSpecification=spec)
    ec2.start_instances(InstanceIds=[instance_id])
    clock.advance(600)


def test_a_target_that_never_starts_in_a_reservation_is_refused_not_stopped(
        sandbox: Sandbox, clock: VirtualClock) -> None:
    [target] = sandbox.build_fleet(FleetSpec(plain=1, azs=1)).instance_ids()
    set_preference(sandbox, clock, target, {"CapacityReservationPreference": "none"})
    sandbox.reset_api_calls()

    result = run(sandbox, clock, [target], HOLD, START)

    assert result.summary == {"refused": 1}
    assert result.errors[f"default/us-east-1/{target}"] == (
        f"step stop refused: could not hold capacity for {target}: its Capacity Reservation "
        "preference is none, so it starts only in On-Demand capacity, never in a "
        "reservation, and remediate does not change an instance's own settings. It was "
        "not stopped; set hold_capacity: false to stop it without a hold, or set its "
        "preference to open (aws ec2 modify-instance-capacity-reservation-attributes, "
        "while it is stopped).")
    assert state(sandbox, target) == "running"
    assert calls(sandbox, "StopInstances") == calls(sandbox, "CreateCapacityReservation") == 0


def test_a_target_with_a_reservation_of_its_own_starts_there_without_a_hold(
        sandbox: Sandbox, clock: VirtualClock) -> None:
    [target] = sandbox.build_fleet(FleetSpec(plain=1, azs=1)).instance_ids()
    ec2 = sandbox.client("ec2")
    own = ec2.create_capacity_reservation(
        InstanceType="m5.large", InstancePlatform="Windows", AvailabilityZone=AZ,
        InstanceCount=1, InstanceMatchCriteria="targeted")["CapacityReservation"][
        "CapacityReservationId"]
    set_preference(sandbox, clock, target,
                   {"CapacityReservationTarget": {"CapacityReservationId": own}})
    sandbox.set_capacity("m5.large", AZ, 0, at=clock.now() + 300)  # none left outside it
    sandbox.reset_api_calls()

    result = run(sandbox, clock, [target], HOLD, PAUSE, START)

    assert result.summary == {"succeeded": 1}
    assert state(sandbox, target) == "running"
    assert calls(sandbox, "CreateCapacityReservation") == 0
    [mine] = ec2.describe_capacity_reservations(CapacityReservationIds=[own])[
        "CapacityReservations"]
    assert (mine["State"], mine["AvailableInstanceCount"]) == ("active", 0)


def test_a_lost_reply_of_the_reservation_makes_exactly_one(
        sandbox: Sandbox, clock: VirtualClock) -> None:
    ids = sandbox.build_fleet(FleetSpec(plain=2, azs=1)).instance_ids()
    sandbox.lose_replies("CreateCapacityReservation", times=1)

    result = run(sandbox, clock, ids, HOLD, START)

    assert result.summary == {"succeeded": 2}
    assert calls(sandbox, "CreateCapacityReservation") == 3  # one sent again, same token
    assert sandbox.capacity_reservations_created == 2
    assert holds(sandbox) == Counter({"cancelled": 2})


def test_the_end_of_a_run_releases_what_a_failed_target_still_holds(
        sandbox: Sandbox, clock: VirtualClock) -> None:
    [target] = sandbox.build_fleet(FleetSpec(plain=1, azs=1)).instance_ids()

    result = run(sandbox, clock, [target], HOLD, BROKEN)

    assert result.summary == {"failed": 1}
    assert state(sandbox, target) == "stopped"
    assert holds(sandbox) == Counter({"cancelled": 1})


def test_ctrl_c_twice_leaves_the_release_to_resume_which_does_it(
        sandbox: Sandbox, clock: VirtualClock, events: list[Event], bus: EventBus,
        tmp_path: Any) -> None:
    ids = sandbox.build_fleet(FleetSpec(plain=2, azs=1)).instance_ids()
    journal = Journal(tmp_path / "run.journal")
    # The targets fail after their stop with no start to come: only the end of the
    # resumed run can release what they hold.
    run_ = executor(sandbox, clock, ids, HOLD, PAUSE, BROKEN, journal=journal, bus=bus)

    ctrl_c_twice_at(bus, run_, "pause")

    result = run_.run()

    assert result.interrupted
    assert holds(sandbox) == Counter({"active": 2})
    assert (f"Ctrl-C twice: cancelling the held capacity reservations in default/us-east-1 "
            f"is left to `remediate resume {journal.path}`") in [
        n.message for n in events_of(events, Notice)]

    resumed = resume(journal, run_.playbook, clients=sandbox_clients(sandbox), clock=clock,
                     bus=EventBus())

    assert resumed.summary == {"failed": 2}
    assert {state(sandbox, i) for i in ids} == {"stopped"}
    assert holds(sandbox) == Counter({"cancelled": 2})


def test_one_ctrl_c_ends_the_run_holding_nothing(
        sandbox: Sandbox, clock: VirtualClock, bus: EventBus) -> None:
    ids = sandbox.build_fleet(FleetSpec(plain=2, azs=1)).instance_ids()
    run_ = executor(sandbox, clock, ids, HOLD, PAUSE, START, bus=bus)
    when(bus, lambda e: isinstance(e, StepStarted) and e.step_id == "pause", run_.request_stop)

    result = run_.run()

    assert result.interrupted
    assert {state(sandbox, i) for i in ids} == {"stopped"}
    assert holds(sandbox) == Counter({"cancelled": 2})


def test_a_rollback_does_not_spend_a_second_capacity_budget_on_the_start(
        sandbox: Sandbox, clock: VirtualClock, events: list[Event], bus: EventBus) -> None:
    [target] = sandbox.build_fleet(FleetSpec(plain=1, azs=1)).instance_ids()
    sandbox.set_capacity("m5.large", AZ, 0, at=clock.now() + 300)

    result = executor(sandbox, clock, [target], step("stop", "ec2.stop"), PAUSE, START,
                      rollback=(PUT_BACK,), bus=bus).run()

    assert result.summary == {"failed": 1}
    assert result.errors[f"default/us-east-1/{target}"] == (
        f"step start failed: no capacity to start {target}: 4 attempts over 3m30s were "
        "refused (InsufficientInstanceCapacity: We currently do not have sufficient m5.large "
        "capacity in the Availability Zone you requested (us-east-1a). Our system will be "
        "working on provisioning additional capacity. You can currently get m5.large "
        "capacity by not specifying an Availability Zone in your request or choosing other "
        "Availability Zones.). It is stopped, with its root volume attached: start it again "
        f"in a few minutes (aws ec2 start-instances --instance-ids {target}, or run again "
        "with --retry-failed), or change its instance type while it is stopped; it cannot "
        "move to another Availability Zone, its volumes are in this one.; rollback step "
        f"put_back failed: {target} not started again: no capacity, as above")
    # The rollback ran, and sent no StartInstances of its own.
    assert [e.step_id for e in events_of(events, StepFinished) if e.rollback] == ["put_back"]
    assert started(sandbox, target) == 4
    assert state(sandbox, target) == "stopped"


def test_a_resumed_rollback_still_knows_the_start_was_refused_for_capacity(
        sandbox: Sandbox, clock: VirtualClock, bus: EventBus, tmp_path: Any) -> None:
    [target] = sandbox.build_fleet(FleetSpec(plain=1, azs=1)).instance_ids()
    sandbox.set_capacity("m5.large", AZ, 0, at=clock.now() + 300)
    journal = Journal(tmp_path / "run.journal")
    wait = step("wait", "control.pause", {"duration": 600.0})
    run_ = executor(sandbox, clock, [target], step("stop", "ec2.stop"), PAUSE, START,
                    rollback=(wait, PUT_BACK), journal=journal, bus=bus)

    # The process stops in the rollback, before the put_back step reads run.failure.
    ctrl_c_twice_at(bus, run_, "wait")
    assert run_.run().interrupted
    assert started(sandbox, target) == 4

    resumed = resume(journal, run_.playbook, clients=sandbox_clients(sandbox), clock=clock,
                     bus=EventBus())

    assert resumed.summary == {"failed": 1}
    assert resumed.errors[f"default/us-east-1/{target}"].endswith(
        f"; rollback step put_back failed: {target} not started again: no capacity, as above")
    # The resumed rollback sent no StartInstances either: 4, the start's own budget.
    assert started(sandbox, target) == 4
    assert state(sandbox, target) == "stopped"


def test_resume_keeps_a_target_refused_for_capacity_as_it_was(
        sandbox: Sandbox, clock: VirtualClock, bus: EventBus, tmp_path: Any) -> None:
    ids = sandbox.build_fleet(FleetSpec(plain=2, azs=2)).instance_ids()
    zone = {i: sandbox.client("ec2").describe_instances(InstanceIds=[i])["Reservations"][0][
        "Instances"][0]["Placement"]["AvailabilityZone"] for i in ids}
    [dry] = [i for i in ids if zone[i] == AZ]
    sandbox.set_capacity("m5.large", AZ, 0)
    journal = Journal(tmp_path / "run.journal")
    run_ = executor(sandbox, clock, ids, HOLD, PAUSE, BROKEN, journal=journal, bus=bus)

    ctrl_c_twice_at(bus, run_, "pause")
    first = run_.run()
    assert first.statuses[f"default/us-east-1/{dry}"] == "refused"

    resumed = resume(journal, run_.playbook, clients=sandbox_clients(sandbox), clock=clock,
                     bus=EventBus())

    # The refused one is finished: resume leaves it, the other goes on (and fails).
    assert resumed.summary == {"refused": 1, "failed": 1}
    assert resumed.errors[f"default/us-east-1/{dry}"] == "step stop refused: " + \
        REFUSED_HOLD.format(target=dry)
    assert state(sandbox, dry) == "running"
    assert not any(c.operation == "StopInstances" and c.names(dry) for c in sandbox.api_calls)
    assert holds(sandbox) == Counter({"cancelled": 1})
