"""Ctrl-C mid-run: every target is left consistent, and resume finishes the job."""

from __future__ import annotations

from typing import Any

from executor_support import (
    REGION,
    events_of,
    fixed,
    rescue_instances,
    root_in_place,
    swap_playbook,
    when,
)

from remediate.actions.contract import Target
from remediate.clock import VirtualClock
from remediate.executor.engine import Executor
from remediate.executor.events import (
    Event,
    EventBus,
    Interrupted,
    Notice,
    RollbackStarted,
    StepStarted,
)
from remediate.executor.resume import resume
from remediate.journal import Journal
from remediate.sandbox import Fleet, FleetSpec, Sandbox

ROLLBACK_STEPS = {"rb_unrescue", "rb_reattach", "rb_restore"}


def swap_executor(sandbox: Sandbox, fleet: Fleet, clients: Any, clock: VirtualClock,
                  bus: EventBus, journal: Journal) -> Executor:
    pb = swap_playbook(fleet.regions[REGION].rescue_windows_ami, concurrency=4)
    targets = [Target("ec2-instance", t.instance_id, t.region) for t in fleet.targets]
    return Executor(pb, targets, clients=clients, clock=clock, bus=bus, journal=journal,
                    run_id="run-c", workers=4)


def test_one_ctrl_c_rolls_back_what_was_touched_and_starts_nothing_new(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event], tmp_path: Any) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=10, azs=2))
    journal = Journal(tmp_path / "run.journal")
    executor = swap_executor(sandbox, fleet, clients, clock, bus, journal)
    when(bus, lambda e: isinstance(e, StepStarted) and e.step_id == "attach",
         executor.request_stop)

    result = executor.run()

    assert result.interrupted and not result.ok
    [interrupted] = events_of(events, Interrupted)
    assert not interrupted.second and len(interrupted.in_flight) == 4
    assert any(": step attach (rescue.attach_volume)" in line for line in interrupted.in_flight)
    after = events[events.index(interrupted):]
    assert {e.step_id for e in events_of(after, StepStarted)} <= ROLLBACK_STEPS
    assert result.summary == {"interrupted": 10}  # the operator's choice: no failure
    records = journal.targets("run-c")
    rolled_back = [k for k, r in records.items() if r.phase == "restart"]
    assert len(rolled_back) == 4
    assert all(records[k].error.endswith("rolled back to where it was; `remediate resume` "
                                         "starts it again") for k in rolled_back)
    # Every target is consistent: its own root volume at its root device, running.
    assert all(root_in_place(sandbox, t) for t in fleet.targets)
    assert rescue_instances(sandbox) == []
    assert journal.run("run-c").status == "interrupted"
    assert all(sandbox.channel_file_present(t.root_volume_id) for t in fleet.targets)

    # Resume runs what never started and starts the rolled-back targets again.
    again: list[Event] = []
    bus2 = EventBus()
    bus2.subscribe(again.append)
    resumed = resume(journal, executor.playbook, clients=clients, clock=clock, bus=bus2)

    assert resumed.summary == {"succeeded": 10}
    assert all(fixed(sandbox, t) for t in fleet.targets)
    restarted = {k.rsplit("/", 1)[1] for k in rolled_back}
    first_steps = {e.target.id for e in events_of(again, StepStarted) if e.step_id == "snapshot"}
    assert restarted <= first_steps
    assert rescue_instances(sandbox) == []


def test_a_second_ctrl_c_stops_waiting_and_leaves_the_cleanup_to_resume_which_does_it(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event], tmp_path: Any) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=8, azs=2))
    journal = Journal(tmp_path / "run.journal")
    executor = swap_executor(sandbox, fleet, clients, clock, bus, journal)
    pressed: dict[str, float] = {}

    def second_ctrl_c() -> None:
        pressed["at"], pressed["calls"] = clock.now(), len(sandbox.api_calls)
        executor.request_stop()

    when(bus, lambda e: isinstance(e, StepStarted) and e.step_id == "repair",
         executor.request_stop)
    when(bus, lambda e: isinstance(e, RollbackStarted), second_ctrl_c)

    result = executor.run()

    first, second = events_of(events, Interrupted)
    assert (first.second, second.second) == (False, True)
    assert second.in_flight and all(": " in line for line in second.in_flight)
    assert result.interrupted
    # It stopped waiting: nothing was sent after the second Ctrl-C (the rescue pool's
    # detaching and terminating is left), and the run ended within simulated seconds.
    assert [c.operation for c in sandbox.api_calls[int(pressed["calls"]):] if c.mutating] == []
    assert clock.now() - pressed["at"] < 1.0
    rescue = rescue_instances(sandbox)
    assert rescue
    [notice] = [n.message for n in events_of(events, Notice) if "left to" in n.message]
    assert notice == (f"Ctrl-C twice: terminating the rescue instances in default/{REGION} "
                      f"is left to `remediate resume {journal.path}`")
    left = [k for k, status in result.statuses.items() if status == "interrupted"]
    records = journal.targets("run-c")
    assert {records[k].phase for k in left} <= {"steps", "stop-rollback", "inspected"}
    assert "stop-rollback" in {records[k].phase for k in left}

    resumed = resume(journal, executor.playbook, clients=clients, clock=clock, bus=EventBus())

    # The rollbacks the operator caused are finished, then those targets start again.
    assert resumed.summary == {"succeeded": 8}
    assert all(fixed(sandbox, t) for t in fleet.targets)
    assert rescue_instances(sandbox) == []
    terminated = {i for c in journal.calls("run-c") if c.operation == "TerminateInstances"
                  and c.step_id == "finish" for i in c.params["InstanceIds"]}
    assert set(rescue) <= terminated
