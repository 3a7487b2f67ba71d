"""The executor end to end against the sandbox: steps, failures, guards, dry run, locks."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from executor_support import (
    REGION,
    ec2_targets,
    events_of,
    playbook,
    step,
    tags_of,
)

from remediate.actions.contract import Target
from remediate.clock import VirtualClock
from remediate.executor.claiming import SETTLE
from remediate.executor.engine import Executor
from remediate.executor.events import (
    BatchFinished,
    BatchStarted,
    BudgetExhausted,
    Event,
    EventBus,
    Notice,
    RollbackStarted,
    RunFinished,
    StepFinished,
    StepPlanned,
    StepRetrying,
    TargetFinished,
    TargetInspected,
    TargetStarted,
)
from remediate.executor.guards import BatchResult, GuardViolation
from remediate.executor.result import RunResult
from remediate.journal import Journal
from remediate.language.model import BatchSize, Condition, Guards, Playbook, Retries
from remediate.reporters.lines import line
from remediate.sandbox import FleetSpec, Sandbox

TEST_INSPECT = {"ec2-instance": "test.inspect"}


def execute(pb: Playbook, ids: list[str], clients: Any, clock: VirtualClock, bus: EventBus,
            journal: Journal, **options: Any) -> RunResult:
    options.setdefault("inspect_actions", TEST_INSPECT)
    return Executor(pb, ec2_targets(ids), clients=clients, clock=clock, bus=bus,
                    journal=journal, run_id="run-1", workers=4, **options).run()


def test_steps_run_in_order_with_templates_when_and_journaled_outputs(
        fleet_ids: list[str], sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event], journal: Journal) -> None:
    pb = playbook(
        step("first", "test.tag", {"key": "first", "value": "${{ run.id }}"}),
        step("second", "test.tag", {"key": "second", "value": "${{ steps.first.outputs.tagged }}"}),
        step("never", "test.tag", {"key": "never"},
             when=Condition("equals", "steps.first.status", "failed")),
        step("az", "test.tag", {"key": "az", "value": "${{ target.availability_zone }}"}))

    result = execute(pb, fleet_ids, clients, clock, bus, journal, batch_window=1.0)

    assert result.ok and result.summary == {"succeeded": 10}
    for iid in fleet_ids:
        tags = tags_of(sandbox, iid)
        assert (tags["first"], tags["second"]) == ("run-1", iid)
        assert tags["az"].startswith("us-east-1") and "never" not in tags
    # Equal tags merge into one CreateTags (one per AZ value); per-target values cannot.
    # The run's claim tags (one value for all) went in one more.
    assert result.api_calls["ec2:CreateTags"] == 1 + 10 + 2 + 1
    finished = Counter((e.step_id, e.status) for e in events_of(events, StepFinished))
    assert finished == {("first", "succeeded"): 10, ("second", "succeeded"): 10,
                        ("never", "skipped"): 10, ("az", "succeeded"): 10}
    record = journal.targets("run-1")[f"default/{REGION}/{fleet_ids[0]}"]
    assert (record.phase, record.status) == ("done", "succeeded")
    assert [(s.step_id, s.status, s.outputs) for s in record.steps] == [
        ("first", "succeeded", {"tagged": fleet_ids[0]}),
        ("second", "succeeded", {"tagged": fleet_ids[0]}), ("never", "skipped", {}),
        ("az", "succeeded", {"tagged": fleet_ids[0]})]
    assert journal.run("run-1").status == "finished"
    assert events_of(events, RunFinished)[0].summary == {"succeeded": 10}


def test_a_step_failing_on_some_targets_rolls_them_back(
        fleet_ids: list[str], sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event], journal: Journal) -> None:
    failing = fleet_ids[:3]
    pb = playbook(step("tag", "test.tag", {"fail_ids": failing}),
                  step("after", "test.tag", {"key": "after"}),
                  rollback=(step("undo", "test.tag", {"value": "rolled-back"}),))

    result = execute(pb, fleet_ids, clients, clock, bus, journal)

    assert result.summary == {"rolled_back": 3, "succeeded": 7}
    for iid in fleet_ids:
        expected = {"fixed": "rolled-back"} if iid in failing else {"fixed": "yes",
                                                                    "after": "yes"}
        assert tags_of(sandbox, iid) == expected
    key = f"default/{REGION}/{failing[0]}"
    assert result.errors[key] == f"step tag failed: {failing[0]} was told to fail"
    assert [e.target.id for e in events_of(events, RollbackStarted)] == failing
    record = journal.targets("run-1")[key]
    assert [(s.step_id, s.rollback, s.status) for s in record.steps] == [
        ("tag", False, "failed"), ("undo", True, "succeeded")]
    assert not result.ok
    # The batch's line says rolled back apart from failed.
    assert [line(e) for e in events_of(events, BatchFinished)] == [
        "batch 1/1 done: 7 succeeded, 0 failed, 3 rolled back"]


def test_a_failure_before_any_mutation_is_not_rolled_back(
        fleet_ids: list[str], sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event], journal: Journal) -> None:
    doomed = fleet_ids[0]
    pb = playbook(
        step("guard", "control.fail", {"message": "not this one"},
             when=Condition("equals", "target.id", doomed)),
        step("tag", "test.tag", {}),
        rollback=(step("undo", "test.tag", {"value": "rolled-back"}),))

    result = execute(pb, fleet_ids, clients, clock, bus, journal)

    assert result.statuses[f"default/{REGION}/{doomed}"] == "failed"
    assert result.errors[f"default/{REGION}/{doomed}"] == "step guard failed: not this one"
    assert tags_of(sandbox, doomed) == {} and not events_of(events, RollbackStarted)
    assert result.summary == {"failed": 1, "succeeded": 9}


def test_on_failure_continue_and_abort(fleet_ids: list[str], sandbox: Sandbox, clients: Any,
                                       clock: VirtualClock, bus: EventBus,
                                       journal: Journal) -> None:
    first, second = fleet_ids[:2]
    pb = playbook(
        step("tag", "test.tag", {"fail_ids": [first]}, on_failure="continue"),
        step("react", "test.tag", {"key": "reacted"},
             when=Condition("equals", "steps.tag.status", "failed")),
        step("strict", "test.tag", {"key": "strict", "fail_ids": [second]}, on_failure="abort"),
        step("last", "test.tag", {"key": "last"}),
        rollback=(step("undo", "test.tag", {"value": "rolled-back"}),))

    result = execute(pb, fleet_ids[:3], clients, clock, bus, journal)

    assert result.statuses == {f"default/{REGION}/{first}": "succeeded",
                               f"default/{REGION}/{second}": "failed",
                               f"default/{REGION}/{fleet_ids[2]}": "succeeded"}
    assert tags_of(sandbox, first) == {"fixed": "yes", "reacted": "yes", "strict": "yes",
                                       "last": "yes"}
    assert tags_of(sandbox, second) == {"fixed": "yes", "strict": "yes"}


def test_concurrency_counts_targets_in_flight_per_region(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event], journal: Journal) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=10, azs=1, regions=(REGION, "eu-west-1")))
    targets = [Target("ec2-instance", t.instance_id, t.region) for t in fleet.targets]
    pb = playbook(step("tag", "test.tag", {}), concurrency=2)

    result = Executor(pb, targets, clients=clients, clock=clock, bus=bus, journal=journal,
                      run_id="run-1", workers=4, inspect_actions=TEST_INSPECT).run()

    assert result.summary == {"succeeded": 10}
    in_flight: Counter[str] = Counter()
    most: Counter[str] = Counter()
    for event in events:
        if isinstance(event, TargetStarted | TargetFinished):
            region = event.target.region
            in_flight[region] += 1 if isinstance(event, TargetStarted) else -1
            most[region] = max(most[region], in_flight[region])
            most["all"] = max(most["all"], in_flight.total())
    assert most == {REGION: 2, "eu-west-1": 2, "all": 4}


def test_the_failure_budget_stops_new_targets(fleet_ids: list[str], sandbox: Sandbox,
                                              clients: Any, clock: VirtualClock, bus: EventBus,
                                              events: list[Event], journal: Journal) -> None:
    pb = playbook(step("tag", "test.tag", {"fail_ids": fleet_ids[:3]}),
                  guards=Guards(max_failure_percent=20, pause_after_canary=False),
                  concurrency=1)

    result = execute(pb, fleet_ids, clients, clock, bus, journal)

    assert [(e.failed, e.allowed) for e in events_of(events, BudgetExhausted)] == [(3, 2)]
    assert result.budget_exhausted
    assert result.summary == {"failed": 3, "skipped": 7}
    for iid in fleet_ids[3:]:
        assert result.errors[f"default/{REGION}/{iid}"] == (
            "not started: the failure budget is spent")
        assert tags_of(sandbox, iid) == {}


def answering(asked: list[BatchResult], answer: bool) -> Callable[[BatchResult], bool]:
    """A ``confirm`` that records what it was shown and answers ``answer``."""

    def confirm(result: BatchResult) -> bool:
        asked.append(result)
        return answer

    return confirm


def test_the_canary_batch_goes_first_and_a_no_stops_the_rest(
        fleet_ids: list[str], sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event], journal: Journal) -> None:
    asked: list[BatchResult] = []
    pb = playbook(step("tag", "test.tag", {}),
                  guards=Guards(batches=(BatchSize(count=1), BatchSize(percent=50))))

    result = execute(pb, fleet_ids, clients, clock, bus, journal,
                     confirm=answering(asked, False))

    assert [(r.index, dict(r.statuses), r.remaining) for r in asked] == [
        (0, {f"default/{REGION}/{fleet_ids[0]}": "succeeded"}, 9)]
    assert result.summary == {"succeeded": 1, "skipped": 9}
    assert [tags_of(sandbox, i) for i in fleet_ids[:2]] == [{"fixed": "yes"}, {}]
    assert events_of(events, Notice)[-1].message == (
        "not confirmed after the canary batch: 9 targets skipped")


def test_after_a_confirmed_canary_batches_grow_and_repeat(
        fleet_ids: list[str], clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event], journal: Journal) -> None:
    asked: list[BatchResult] = []
    pb = playbook(step("tag", "test.tag", {}), concurrency=2,
                  guards=Guards(batches=(BatchSize(count=1), BatchSize(percent=40))))

    result = execute(pb, fleet_ids, clients, clock, bus, journal,
                     confirm=answering(asked, True))

    assert len(asked) == 1 and result.summary == {"succeeded": 10}
    assert [len(e.targets) for e in events_of(events, BatchStarted)] == [1, 4, 4, 1]
    assert journal.state("run-1", "canary_confirmed") is True


def test_step_retries_back_off_and_publish_each_retry(
        fleet_ids: list[str], clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event], journal: Journal) -> None:
    pb = playbook(
        step("flaky", "test.flaky", {"failures": 2},
             retries=Retries(attempts=3, initial_delay=10, multiplier=3, jitter=False)),
        step("hopeless", "test.flaky", {"failures": 5}, retries=Retries(attempts=2, jitter=False,
                                                                        initial_delay=1)))

    result = execute(pb, fleet_ids[:1], clients, clock, bus, journal)

    retries = [(e.step_id, e.attempt, e.delay, e.error) for e in events_of(events, StepRetrying)]
    assert retries == [("flaky", 1, 10.0, "attempt 1 failed"),
                       ("flaky", 2, 30.0, "attempt 2 failed"),
                       ("hopeless", 1, 1.0, "attempt 4 failed")]  # counts across steps
    flaky = next(e for e in events_of(events, StepFinished) if e.step_id == "flaky")
    assert (flaky.status, flaky.attempts, flaky.outputs) == ("succeeded", 3, {"attempts": 3})
    assert result.errors[f"default/{REGION}/{fleet_ids[0]}"] == (
        "step hopeless failed: attempt 5 failed")


def test_a_step_that_never_finishes_times_out(fleet_ids: list[str], clients: Any,
                                              clock: VirtualClock, bus: EventBus,
                                              journal: Journal) -> None:
    pb = playbook(step("hang", "test.hang", {}, timeout=30.0),
                  step("hang_default", "test.hang", {"swallow": False}), default_timeout=600.0)
    start = clock.now()

    result = execute(pb, fleet_ids[:1], clients, clock, bus, journal)

    assert result.errors[f"default/{REGION}/{fleet_ids[0]}"] == (
        "step hang failed: timed out after 30s (the step's timeout)")
    # The claim round waits SETTLE seconds before the first step.
    assert 30.0 <= clock.now() - start - SETTLE < 32.0


def test_params_that_do_not_render_or_check_fail_the_step_with_the_reason(
        fleet_ids: list[str], clients: Any, clock: VirtualClock, bus: EventBus,
        journal: Journal) -> None:
    pb = playbook(step("bad", "test.tag", {"value": "${{ steps.nope.outputs.x }}"}),
                  step("wrong", "test.flaky", {"failures": "two"}))

    result = execute(pb, fleet_ids[:2], clients, clock, bus, journal)
    pb2 = playbook(step("wrong", "test.flaky", {"failures": "two"}))
    result2 = execute(pb2, fleet_ids[2:3], clients, clock, bus, Journal.memory())

    assert result.errors[f"default/{REGION}/{fleet_ids[0]}"] == (
        "step bad failed: with: ${{ steps.nope.outputs.x }} has no value ('nope' is not set)")
    assert result2.errors[f"default/{REGION}/{fleet_ids[2]}"] == (
        "step wrong failed: steps[0].with.failures: expected an integer of at least 0, "
        "found 'two' (a string)")


def test_too_many_targets_refuse_the_run_before_anything(
        fleet_ids: list[str], sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event], journal: Journal) -> None:
    pb = playbook(step("tag", "test.tag", {}), guards=Guards(max_targets=5))

    with pytest.raises(GuardViolation, match=r"^10 targets selected, more than guards\.max_"):
        execute(pb, fleet_ids, clients, clock, bus, journal)

    assert events == [] and sandbox.api_calls == []
    with pytest.raises(KeyError):
        journal.run()


def test_a_dry_run_plans_every_step_and_sends_no_mutating_call(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event], journal: Journal) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=6, stop_protected=1, azs=2))
    ami = fleet.regions[REGION].rescue_windows_ami
    pb = playbook(step("stop", "ec2.stop", {}), step("detach", "ec2.detach_root", {}),
                  step("attach", "rescue.attach_volume", {"rescue_image_id": ami}),
                  step("repair", "rescue.repair", {}), step("back", "ec2.reattach_root", {}),
                  step("start", "ec2.start", {}))
    ids = fleet.instance_ids()

    result = execute(pb, ids, clients, clock, bus, journal, dry_run=True,
                     inspect_actions=None)

    assert not [c for c in sandbox.api_calls if c.mutating]
    protected = fleet.by_kind("stop_protected")[0].instance_id
    assert result.statuses[f"default/{REGION}/{protected}"] == "refused"
    assert result.errors[f"default/{REGION}/{protected}"].startswith(
        f"blocked by stop-protection: {protected} has DisableApiStop set")
    assert Counter(result.statuses.values()) == {"planned": 6, "refused": 1}
    planned = events_of(events, StepPlanned)
    assert len(planned) == 6 * 6
    stop = next(p for p in planned if p.step_id == "stop")
    assert (stop.calls, stop.skip, stop.mutating) == (("ec2:StopInstances",), None, True)
    assert result.estimate is not None and result.estimate.seconds > 0
    assert events_of(events, RunFinished)[0].estimate_seconds == result.estimate.seconds
    assert result.refused_mutations == 0


def test_a_dry_run_refuses_a_buggy_actions_mutation(fleet_ids: list[str], sandbox: Sandbox,
                                                    clients: Any, clock: VirtualClock,
                                                    bus: EventBus, journal: Journal) -> None:
    pb = playbook(step("tag", "test.tag", {}))

    result = execute(pb, fleet_ids[:3], clients, clock, bus, journal, dry_run=True,
                     inspect_actions={"ec2-instance": "test.buggy_inspect"})

    assert result.refused_mutations == 3
    assert not [c for c in sandbox.api_calls if c.mutating]
    key = f"default/{REGION}/{fleet_ids[0]}"
    assert result.errors[key] == (
        "inspection failed: internal error in action test.buggy_inspect: MutationRefused: "
        f"dry run: refused to send ec2:StopInstances, which mutates (for {key})")


def test_findings_refuse_targets_in_a_real_run_too(sandbox: Sandbox, clients: Any,
                                                   clock: VirtualClock, bus: EventBus,
                                                   events: list[Event],
                                                   journal: Journal) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=2, instance_store=1, azs=1))
    store = fleet.by_kind("instance_store")[0].instance_id
    pb = playbook(step("stop", "ec2.stop", {}), step("start", "ec2.start", {}))

    result = execute(pb, fleet.instance_ids(), clients, clock, bus, journal,
                     inspect_actions=None)
    accepted = execute(pb, [store], clients, clock, bus, Journal.memory(), inspect_actions=None,
                       accepted={"instance-store-data-loss"})

    assert result.summary == {"succeeded": 2, "refused": 1}
    inspected = next(e for e in events_of(events, TargetInspected) if e.target.id == store)
    assert inspected.refused is not None and inspected.refused.startswith(
        "instance-store-data-loss not accepted (--accept instance-store-data-loss)")
    assert accepted.summary == {"succeeded": 1}


def _lock(path: Path, key: str, run_id: str, pid: int, host: str) -> None:
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO locks (target_key, run_id, pid, host, started_at) "
                   "VALUES (?,?,?,?,?)", (key, run_id, pid, host, "2024-07-19T05:31:00+00:00"))


def test_a_target_locked_by_a_live_run_is_refused_naming_the_holder(
        fleet_ids: list[str], sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event], tmp_path: Path) -> None:
    path = tmp_path / "shared.journal"
    journal = Journal(path)
    key = f"default/{REGION}/{fleet_ids[0]}"
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        _lock(path, key, "run-other", other.pid, journal.host)
        result = execute(playbook(step("tag", "test.tag", {})), fleet_ids[:3], clients, clock,
                         bus, journal)
    finally:
        other.communicate(b"")

    assert result.statuses[key] == "refused"
    assert result.errors[key] == (f"{key} is locked by run run-other (pid {other.pid} on "
                                  f"{journal.host}, started 2024-07-19T05:31:00+00:00)")
    assert tags_of(sandbox, fleet_ids[0]) == {} and tags_of(sandbox, fleet_ids[1])
    finished = [e for e in events_of(events, TargetFinished) if e.target.key == key]
    assert [e.status for e in finished] == ["refused"]
    # Its own locks are released at the end; the other run's lock stays.
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT target_key, run_id FROM locks").fetchall() == [
            (key, "run-other")]


def test_a_stale_lock_is_taken_over_with_a_warning(fleet_ids: list[str], clients: Any,
                                                   clock: VirtualClock, bus: EventBus,
                                                   events: list[Event], tmp_path: Path) -> None:
    path = tmp_path / "shared.journal"
    journal = Journal(path)
    key = f"default/{REGION}/{fleet_ids[0]}"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    _lock(path, key, "run-crashed", int(gone.stdout), journal.host)

    result = execute(playbook(step("tag", "test.tag", {})), fleet_ids[:1], clients, clock, bus,
                     journal)

    assert result.summary == {"succeeded": 1}
    assert [e.message for e in events_of(events, Notice)] == [
        f"{key}: took over a stale lock of run run-crashed (pid {int(gone.stdout)} on "
        f"{journal.host} is gone)"]


def test_targets_in_several_regions_each_get_their_own_calls(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        journal: Journal) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=4, azs=1, regions=("us-east-1", "eu-west-1")))
    targets = [Target("ec2-instance", t.instance_id, t.region) for t in fleet.targets]

    result = Executor(playbook(step("tag", "test.tag", {})), targets, clients=clients,
                      clock=clock, bus=bus, journal=journal, run_id="run-1",
                      inspect_actions=TEST_INSPECT).run()

    assert {t.region for t in targets} == {"us-east-1", "eu-west-1"}
    assert result.summary == {"succeeded": len(targets)}
    assert result.api_calls["ec2:CreateTags"] == 2 + 2  # the step's and the claims'
