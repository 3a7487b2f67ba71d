"""``guards.rollout: ramp``: the canary batch alone, then in-flight caps opened by results.

Against the sandbox: targets wait on the run's clock (``control.pause``) and tag their
instance (CreateTags), so each test checks the instances' tags at the end as well as
the order in which targets started and finished.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from executor_support import REGION, ec2_targets, events_of, playbook, step, tags_of

from remediate.actions.contract import Target
from remediate.clock import Clock, ScaledClock, VirtualClock
from remediate.executor.engine import Executor
from remediate.executor.events import (
    BatchFinished,
    BatchStarted,
    BudgetExhausted,
    Event,
    EventBus,
    RampWidened,
    StepStarted,
    TargetFinished,
    TargetStarted,
)
from remediate.executor.guards import BatchResult
from remediate.executor.ramp import Ramp
from remediate.executor.resume import resume
from remediate.journal import Journal
from remediate.language.model import BatchSize, Condition, Guards, Playbook, Step
from remediate.reporters.lines import line
from remediate.sandbox import Durations, FleetSpec, Sandbox

TEST_INSPECT = {"ec2-instance": "test.inspect"}
RAMP = Guards(batches=(BatchSize(count=1), BatchSize(percent=30), BatchSize(percent=100)),
              rollout="ramp", pause_after_canary=False)


class Crash(BaseException):
    """The process dies in the middle of the scheduler's work."""


def pause(step_id: str, duration: str, only: str | None = None) -> Step:
    when = Condition("equals", "target.id", only) if only else None
    return step(step_id, "control.pause", {"duration": duration}, when=when)


def straggling(ids: Sequence[str], guards: Guards) -> Playbook:
    """60 s per target, 600 s more for the canary's first successor; then a tag."""
    return playbook(pause("work", "60s"), pause("straggle", "600s", only=ids[1]),
                    step("tag", "test.tag", {}), guards=guards)


def execute(pb: Playbook, ids: Sequence[str], clients: Any, clock: Clock, bus: EventBus,
            journal: Journal, **options: Any) -> Any:
    return Executor(pb, ec2_targets(ids), clients=clients, clock=clock, bus=bus,
                    journal=journal, run_id="run-1", workers=4, inspect_actions=TEST_INSPECT,
                    **options).run()


def most_in_flight_over_cap(events: Sequence[Event], first_cap: int) -> int:
    """How far the targets in flight ever went over the cap their results had earned
    (0: never), replaying the events in order."""
    cap, in_flight, worst, ramping = first_cap, 0, 0, False
    for event in events:
        if isinstance(event, BatchStarted):
            ramping = event.cap is not None
        elif isinstance(event, RampWidened):
            cap = event.cap
        elif isinstance(event, TargetStarted):
            in_flight += 1
            if ramping:
                worst = max(worst, in_flight - cap)
        elif isinstance(event, TargetFinished):
            in_flight -= 1
    return worst


@pytest.fixture
def ids(fleet_ids: list[str]) -> list[str]:
    return fleet_ids


def test_caps_grow_with_results_and_the_last_size_stays() -> None:
    ramp = Ramp((BatchSize(percent=5), BatchSize(percent=25), BatchSize(count=100)), 200)

    assert (ramp.cap, ramp.steps) == (10, [(0, 10), (10, 50), (60, 100)])
    assert [ramp.record() for _ in range(10)] == [False] * 9 + [True]
    assert ramp.cap == 50
    assert not any(ramp.record() for _ in range(49)) and ramp.record() is True
    assert ramp.cap == 100 and not any(ramp.record() for _ in range(500))
    # A resumed run's results count: it starts where they got it.
    assert Ramp((BatchSize(percent=5), BatchSize(percent=25)), 200, results=12).cap == 50


def test_a_ramp_does_not_wait_for_a_stages_straggler(
        ids: list[str], sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event], journal: Journal) -> None:
    result = execute(straggling(ids, RAMP), ids, clients, clock, bus, journal)

    assert result.summary == {"succeeded": 10}
    assert all(tags_of(sandbox, i) == {"fixed": "yes"} for i in ids)
    started = events_of(events, BatchStarted)
    assert [(len(b.targets), b.cap) for b in started] == [(1, None), (9, 3)]
    # After the canary, 3 in flight; once 3 results are in (the straggler's not among
    # them), all of them.
    assert [(e.cap, e.results) for e in events_of(events, RampWidened)] == [(10, 3)]
    assert most_in_flight_over_cap(events, 3) == 0
    # Every target had started before the straggler (batch 2's) finished: no barrier.
    straggler = next(i for i, e in enumerate(events)
                     if isinstance(e, TargetFinished) and e.target.id == ids[1])
    assert sum(isinstance(e, TargetStarted) for e in events[:straggler]) == 10
    assert clock.now() < 60 + 600 + 60 + 60  # the straggler's path after the canary, + 1 poll
    assert [line(e) for e in events_of(events, BatchFinished)] == [
        "batch 1/2 done: 1 succeeded, 0 failed, 0 rolled back",
        "batch 2/2 done: 9 succeeded, 0 failed, 0 rolled back"]
    assert line(started[1]) == "batch 2/2: 9 targets, on a ramp: up to 3 in flight"
    assert line(events_of(events, RampWidened)[0]) == (
        "ramp: up to 10 targets in flight (3 results in after the canary)")


def test_batches_still_wait_for_the_straggler(
        ids: list[str], clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event], journal: Journal) -> None:
    barriers = Guards(batches=RAMP.batches, pause_after_canary=False)

    result = execute(straggling(ids, barriers), ids, clients, clock, bus, journal)

    assert result.summary == {"succeeded": 10}
    assert [(len(b.targets), b.cap) for b in events_of(events, BatchStarted)] == [
        (1, None), (3, None), (6, None)]
    straggler = next(i for i, e in enumerate(events)
                     if isinstance(e, TargetFinished) and e.target.id == ids[1])
    assert sum(isinstance(e, TargetStarted) for e in events[:straggler]) == 4
    assert not events_of(events, RampWidened)


def test_the_budget_stops_new_starts_as_each_result_arrives(
        ids: list[str], sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event], journal: Journal) -> None:
    # 2 of 10 may fail; the three after the canary fail. The first two failures free their
    # slots (the budget holds); the third spends it: nothing starts after it.
    guards = Guards(batches=RAMP.batches, rollout="ramp", pause_after_canary=False,
                    max_failure_percent=20)
    pb = playbook(pause("work", "60s"), step("tag", "test.tag", {"fail_ids": ids[1:4]}),
                  guards=guards)

    result = execute(pb, ids, clients, clock, bus, journal)

    assert [(e.failed, e.allowed) for e in events_of(events, BudgetExhausted)] == [(3, 2)]
    assert result.summary == {"succeeded": 3, "failed": 3, "skipped": 4}
    assert [tags_of(sandbox, i) for i in ids[4:]] == [{"fixed": "yes"}] * 2 + [{}] * 4
    assert result.errors[f"default/{REGION}/{ids[9]}"] == (
        "not started: the failure budget is spent")
    assert [line(e) for e in events_of(events, BatchFinished)][-1] == (
        "batch 2/2 done: 2 succeeded, 3 failed, 0 rolled back, 4 skipped")


def test_the_canary_is_asked_about_and_a_no_leaves_the_ramp_unstarted(
        ids: list[str], sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event], journal: Journal) -> None:
    asked: list[BatchResult] = []

    def no(result: BatchResult) -> bool:
        asked.append(result)
        return False

    guards = Guards(batches=RAMP.batches, rollout="ramp")
    result = execute(straggling(ids, guards), ids, clients, clock, bus, journal, confirm=no)

    assert [(r.index, r.remaining) for r in asked] == [(0, 9)]
    assert result.summary == {"succeeded": 1, "skipped": 9}
    assert [tags_of(sandbox, i) for i in ids[:2]] == [{"fixed": "yes"}, {}]


def test_a_resumed_ramp_asks_no_more_and_counts_what_came_before(
        ids: list[str], clients: Any, clock: VirtualClock, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "run.journal")
    guards = Guards(batches=(BatchSize(count=1), BatchSize(percent=20), BatchSize(percent=100)),
                    rollout="ramp", max_failure_percent=20)
    pb = playbook(pause("work", "60s"), step("tag", "test.tag", {"fail_ids": [ids[1], ids[2],
                                                                               ids[5]]}),
                  pause("after", "60s"), guards=guards)
    dying = EventBus()

    def crash(event: Event) -> None:
        if isinstance(event, StepStarted) and event.step_id == "tag" and (
                event.target.id == ids[3]):
            raise Crash("killed as the 4th target started its tag step")

    dying.subscribe(crash)
    with pytest.raises(Crash):
        execute(pb, ids, clients, clock, dying, journal, confirm=lambda _: True)
    before = {k.rsplit("/", 1)[1]: r.status for k, r in journal.targets("run-1").items()
              if r.status in ("succeeded", "failed")}
    assert before == {ids[0]: "succeeded", ids[1]: "failed", ids[2]: "failed"}

    events: list[Event] = []
    bus = EventBus()
    bus.subscribe(events.append)

    def never(_: BatchResult) -> bool:
        raise AssertionError("asked again about a confirmed canary")

    result = resume(tmp_path / "run.journal", pb, clients=clients, clock=clock, bus=bus,
                    confirm=never, inspect_actions=TEST_INSPECT)

    # The two results after the canary opened the last cap (100% of the 7 left, not 20%:
    # 2); their two failures count against the budget.
    assert [(len(b.targets), b.cap) for b in events_of(events, BatchStarted)] == [(7, 7)]
    assert [(e.failed, e.allowed) for e in events_of(events, BudgetExhausted)] == [(3, 2)]
    assert result.statuses[f"default/{REGION}/{ids[5]}"] == "failed"


@pytest.mark.parametrize("make_clock", [VirtualClock, lambda: ScaledClock(600)],
                         ids=["virtual", "moving"])
def test_a_ramp_runs_on_a_moving_clock_too(make_clock: Callable[[], Clock],
                                           tmp_path: Path) -> None:
    clock = make_clock()
    with Sandbox(clock=clock, durations=Durations()) as sandbox:
        from executor_support import sandbox_clients

        ids = sandbox.build_fleet(FleetSpec(plain=6, azs=1)).instance_ids()
        events: list[Event] = []
        bus = EventBus()
        bus.subscribe(events.append)
        pb = playbook(pause("work", "30s"), step("tag", "test.tag", {}), guards=RAMP)

        result = execute(pb, ids, sandbox_clients(sandbox), clock, bus,
                         Journal(tmp_path / "run.journal"))

        assert result.summary == {"succeeded": 6}
        assert all(tags_of(sandbox, i) == {"fixed": "yes"} for i in ids)
        assert most_in_flight_over_cap(events, 2) == 0
        assert [(e.cap, e.results) for e in events_of(events, RampWidened)] == [(6, 2)]


def test_a_freed_slot_goes_to_the_accounts_and_regions_in_turn(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event], journal: Journal) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=8, azs=1, regions=(REGION, "eu-west-1")))
    targets = sorted((Target("ec2-instance", t.instance_id, t.region) for t in fleet.targets),
                     key=lambda t: t.region != REGION)  # us-east-1's first
    guards = Guards(batches=(BatchSize(count=1), BatchSize(count=2)), rollout="ramp",
                    pause_after_canary=False)
    pb = playbook(pause("work", "60s"), step("tag", "test.tag", {}), guards=guards)

    result = Executor(pb, targets, clients=clients, clock=clock, bus=bus, journal=journal,
                      run_id="run-1", workers=4, inspect_actions=TEST_INSPECT).run()

    assert result.summary == {"succeeded": 8}
    regions = [e.target.region for e in events_of(events, TargetStarted)]
    # The canary, then two at a time, one of each Region while both have targets left.
    assert regions[0] == REGION and sorted(regions[1:3]) == sorted([REGION, "eu-west-1"])
    assert most_in_flight_over_cap(events, 2) == 0
