"""Interrupts during a rollback: a rollback is as resumable as a forward step, and a
target the operator interrupted never counts against the failure budget.

Issue 13, section 3: Ctrl-C once (targets roll back), ``resume``, Ctrl-C twice during
its rollback, ``resume`` again left instances stopped with DeleteOnTermination false,
"rolled back" and the failure budget spent: the second rollback took the first
one's journaled ``restore`` row for its own.
"""

from __future__ import annotations

from typing import Any

from executor_support import (
    REGION,
    events_of,
    fixed,
    playbook,
    rescue_instances,
    root_in_place,
    step,
    swap_playbook,
    tags_of,
    when,
)

from remediate.actions.contract import Target
from remediate.clock import VirtualClock
from remediate.executor.engine import Executor
from remediate.executor.events import (
    BudgetExhausted,
    Event,
    EventBus,
    RollbackStarted,
    StepReconciling,
    StepStarted,
    TargetRestarted,
)
from remediate.executor.resume import resuming
from remediate.journal import Journal
from remediate.language.model import Guards, Retries
from remediate.sandbox import Fleet, FleetSpec, Sandbox

NO_BUDGET = Guards(pause_after_canary=False, max_failure_percent=0)


def targets_of(fleet: Fleet) -> list[Target]:
    return [Target("ec2-instance", t.instance_id, t.region) for t in fleet.targets]


def the_nth(n: int, step_id: str) -> Any:
    """An event test: the n-th start of ``step_id`` (on any target)."""
    seen = 0

    def test(event: Event) -> bool:
        nonlocal seen
        if isinstance(event, StepStarted) and event.step_id == step_id:
            seen += 1
        return seen == n

    return test


def test_ctrl_c_then_resume_then_ctrl_c_twice_in_its_rollback_then_resume_fixes_all(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, tmp_path: Any) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=6, azs=1))
    journal = Journal(tmp_path / "run.journal")
    pb = swap_playbook(fleet.regions[REGION].rescue_windows_ami, concurrency=6,
                       guards=NO_BUDGET)
    first = Executor(pb, targets_of(fleet), clients=clients, clock=clock, bus=EventBus(),
                     journal=journal, run_id="run-r", workers=6)
    # Ctrl-C once while every target is on a rescue instance: all six roll back.
    when(first.rc.bus, the_nth(6, "repair"), first.request_stop)
    assert first.run().summary == {"interrupted": 6}
    assert {r.phase for r in journal.targets("run-r").values()} == {"restart"}

    bus = EventBus()
    again = resuming(journal, pb, clients=clients, clock=clock, bus=bus)
    # Ctrl-C once when they are all on rescue instances again, twice when the first
    # rollback step of the first of them starts: every rollback stops mid-way.
    when(bus, the_nth(6, "repair"), again.request_stop)
    when(bus, lambda e: isinstance(e, StepStarted) and e.step_id == "rb_reattach",
         again.request_stop)
    assert again.run().summary == {"interrupted": 6}
    assert {r.phase for r in journal.targets("run-r").values()} == {"stop-rollback"}

    events: list[Event] = []
    bus = EventBus()
    bus.subscribe(events.append)
    result = resuming(journal, pb, clients=clients, clock=clock, bus=bus).run()

    # Each rollback was finished (every rollback step run again in this pass, none taken
    # from the first rollback's rows), then the target started again and was fixed.
    assert result.summary == {"succeeded": 6}, result.errors
    assert events_of(events, BudgetExhausted) == []
    assert all(fixed(sandbox, t) for t in fleet.targets)
    assert rescue_instances(sandbox) == []
    restored = {e.target.id for e in events_of(events, StepStarted) if e.step_id == "rb_restore"}
    assert restored == set(fleet.instance_ids())
    assert len(events_of(events, TargetRestarted)) == 6
    assert {r.pass_number for r in journal.targets("run-r").values()} == {3}


def test_a_step_not_retried_because_of_ctrl_c_is_interrupted_not_a_failure(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, tmp_path: Any) -> None:
    """The step failed once and would have been retried, but for the Ctrl-C: the
    target is put back and starts again on resume; the budget (0 failures) holds."""
    ids = sandbox.build_fleet(FleetSpec(plain=2, azs=1)).instance_ids()
    journal = Journal(tmp_path / "run.journal")
    pb = playbook(step("mark", "test.tag", {"value": "working"}),
                  step("flaky", "test.flaky", {"failures": 1},
                       retries=Retries(attempts=3, initial_delay=1.0, jitter=False)),
                  rollback=(step("unmark", "test.tag", {"value": "put-back"}),),
                  guards=NO_BUDGET)
    events: list[Event] = []
    bus = EventBus()
    bus.subscribe(events.append)
    executor = Executor(pb, [Target("ec2-instance", i, REGION) for i in ids], clients=clients,
                        clock=clock, bus=bus, journal=journal, run_id="run-f",
                        inspect_actions={"ec2-instance": "test.inspect"})
    when(bus, the_nth(1, "flaky"), executor.request_stop)

    result = executor.run()

    assert result.summary == {"interrupted": 2}
    assert events_of(events, BudgetExhausted) == []
    assert len(events_of(events, RollbackStarted)) == 2
    records = journal.targets("run-f")
    assert {r.phase for r in records.values()} == {"restart"}
    assert all(r.error is not None and r.error.startswith(
        "interrupted by the operator during step flaky (attempt 1 failed (not retried: the "
        "run is stopping)); rolled back") for r in records.values())
    assert {tags_of(sandbox, i)["fixed"] for i in ids} == {"put-back"}

    resumed = resuming(journal, pb, clients=clients, clock=clock, bus=EventBus(),
                       inspect_actions={"ec2-instance": "test.inspect"}).run()

    assert resumed.summary == {"succeeded": 2}
    assert {tags_of(sandbox, i)["fixed"] for i in ids} == {"working"}


def test_a_step_whose_reconciliation_ctrl_c_cut_off_is_interrupted_not_a_failure(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, tmp_path: Any) -> None:
    """DetachVolume took effect but its reply was lost; the step would reconcile from
    AWS's state, but the run is stopping: the outcome is unknown, not a failure."""
    fleet = sandbox.build_fleet(FleetSpec(plain=1, azs=1))
    journal = Journal(tmp_path / "run.journal")
    pb = swap_playbook(fleet.regions[REGION].rescue_windows_ami, guards=NO_BUDGET)
    events: list[Event] = []
    bus = EventBus()
    bus.subscribe(events.append)
    executor = Executor(pb, targets_of(fleet), clients=clients, clock=clock, bus=bus,
                        journal=journal, run_id="run-u")
    sandbox.lose_replies("DetachVolume", times=1)
    when(bus, lambda e: isinstance(e, StepStarted) and e.step_id == "detach",
         executor.request_stop)

    result = executor.run()

    assert result.summary == {"interrupted": 1}, result.errors
    assert events_of(events, BudgetExhausted) == []
    assert events_of(events, StepReconciling) == []  # not while the run is stopping
    [record] = journal.targets("run-u").values()
    assert record.phase == "restart"
    assert record.error is not None and record.error.startswith(
        "step detach: DetachVolume outcome unknown (InternalError: ")
    assert "; not reconciled: the run is stopping; rolled back to where it was" in record.error
    assert all(root_in_place(sandbox, t) for t in fleet.targets)

    sandbox.clear_faults()
    resumed = resuming(journal, pb, clients=clients, clock=clock, bus=EventBus()).run()

    assert resumed.summary == {"succeeded": 1}
    assert all(fixed(sandbox, t) for t in fleet.targets)


def test_a_rollback_resumed_after_interruptions_ends_with_the_failure_that_caused_it(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, tmp_path: Any) -> None:
    """Each process interrupted on the way wrote its own words as the target's error (the
    rollback cut short by Ctrl-C twice; a resume stopped before it got to the target): the
    rollback finished at last still gives the failure that caused it."""
    [a] = sandbox.build_fleet(FleetSpec(plain=1, azs=1)).instance_ids()
    journal = Journal(tmp_path / "run.journal")
    pb = playbook(step("mark", "test.tag", {"value": "working", "fail_ids": [a]}),
                  rollback=(step("unmark", "test.tag", {"value": "put-back"}),),
                  guards=NO_BUDGET)
    tests = {"ec2-instance": "test.inspect"}
    bus = EventBus()
    first = Executor(pb, [Target("ec2-instance", a, REGION)], clients=clients, clock=clock,
                     bus=bus, journal=journal, run_id="run-r", inspect_actions=tests)
    when(bus, lambda e: isinstance(e, RollbackStarted), first.request_stop)
    when(bus, lambda e: isinstance(e, RollbackStarted), first.request_stop)
    assert first.run().errors == {f"default/{REGION}/{a}": (
        "stopped while in rollback step unmark (test.tag) (Ctrl-C twice); `remediate resume` "
        "continues it")}
    stopped = resuming(journal, pb, clients=clients, clock=clock, bus=EventBus())
    stopped.request_stop()  # before it gets to the target
    assert stopped.run().errors == {
        f"default/{REGION}/{a}": "not started: the run was interrupted"}

    result = resuming(journal, pb, clients=clients, clock=clock, bus=EventBus()).run()

    assert result.statuses == {f"default/{REGION}/{a}": "rolled_back"}
    assert result.errors == {f"default/{REGION}/{a}": f"step mark failed: {a} was told to fail"}
    assert tags_of(sandbox, a)["fixed"] == "put-back"
