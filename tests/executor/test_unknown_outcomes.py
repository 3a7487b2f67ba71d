"""A mutating call that takes effect and loses its reply (AWS answers 500), one operation
at a time: the run reads AWS's state, treats "already done" as done, never does it twice
and never fails because of it. The sandbox plays AWS (``Sandbox.lose_replies``), the
executor runs the real actions."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from executor_support import (
    NO_RETRIES,
    REGION,
    events_of,
    fixed,
    playbook,
    rescue_instances,
    root_in_place,
    step,
    swap_playbook,
)

from remediate.actions.contract import Target
from remediate.clock import VirtualClock
from remediate.executor.engine import Executor
from remediate.executor.events import ApiOutcomeUnknown, Event, EventBus, StepReconciling
from remediate.executor.result import RunResult
from remediate.executor.resume import resume, resuming
from remediate.journal import Journal
from remediate.language.model import BatchSize, Guards, Playbook
from remediate.sandbox import Durations, Fleet, FleetSpec, Sandbox
from remediate.sandbox import Target as FleetTarget


@pytest.fixture
def durations() -> Durations:
    return Durations()


@pytest.fixture
def sandbox(clock: VirtualClock, durations: Durations) -> Iterator[Sandbox]:
    with Sandbox(clock=clock, durations=durations) as sb:
        yield sb


def run(sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus, pb: Playbook,
        fleet: Fleet, journal: Journal | None = None, **kwargs: Any) -> RunResult:
    targets = [Target("ec2-instance", t.instance_id, t.region) for t in fleet.targets]
    return Executor(pb, targets, clients=clients, clock=clock, bus=bus,
                    journal=journal or Journal.memory(), run_id="lost-1", workers=4,
                    **kwargs).run()


def swap(sandbox: Sandbox, fleet: Fleet) -> Playbook:
    return swap_playbook(fleet.regions[REGION].rescue_windows_ami)


def sent(sandbox: Sandbox, operation: str) -> int:
    """How many ``operation`` requests reached AWS (throttled ones excluded)."""
    return sum(1 for c in sandbox.api_calls if c.operation == operation and not c.throttled)


def lost(sandbox: Sandbox, operation: str) -> int:
    return sum(1 for c in sandbox.api_calls if c.operation == operation and c.reply_lost)


def backups(sandbox: Sandbox, target: FleetTarget) -> list[str]:
    found = sandbox.client("ec2", config=NO_RETRIES).describe_snapshots(
        OwnerIds=["self"], Filters=[
            {"Name": "volume-id", "Values": [target.root_volume_id]},
            {"Name": "tag:remediate:purpose", "Values": ["backup"]}])["Snapshots"]
    return [s["SnapshotId"] for s in found]


def launched_rescues(sandbox: Sandbox) -> list[str]:
    """Every rescue instance ever launched, terminated ones too."""
    found = sandbox.client("ec2", config=NO_RETRIES).describe_instances(Filters=[
        {"Name": "tag:remediate:role", "Values": ["rescue"]}])
    return [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]]


def all_fixed(sandbox: Sandbox, fleet: Fleet, result: RunResult) -> bool:
    return (result.summary == {"succeeded": len(fleet.targets)}
            and all(fixed(sandbox, t) for t in fleet.targets)
            and rescue_instances(sandbox) == [] and result.cleanup_errors == ())


def swap_fleet(sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
               plain: int, fault: Callable[[], None]) -> Fleet:
    """The volume swap on ``plain`` targets with ``fault`` set; asserts each was fixed."""
    fleet = sandbox.build_fleet(FleetSpec(plain=plain, azs=1))
    fault()

    result = run(sandbox, clients, clock, bus, swap(sandbox, fleet), fleet)

    assert all_fixed(sandbox, fleet, result), result.errors
    return fleet


@pytest.mark.parametrize(("operation", "replies", "resent"), [
    # No idempotency token: never sent again; the step reads the volume and goes on.
    ("AttachVolume", 2, False),  # to the rescue instance, then back to its instance
    ("DetachVolume", 2, False),  # off its instance, then off the rescue instance
    # Safe to repeat: sent again at once.
    ("StopInstances", 1, True),
    ("StartInstances", 1, True),
    ("ModifyInstanceAttribute", 1, True),
])
def test_a_lost_reply_on_the_volume_swap_is_done_once_and_the_target_is_fixed(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event], operation: str, replies: int, resent: bool) -> None:
    swap_fleet(sandbox, clients, clock, bus, 1,
               lambda: sandbox.lose_replies(operation, times=replies))

    assert lost(sandbox, operation) == replies
    assert sent(sandbox, operation) == replies * (2 if resent else 1)
    reconciled = [e.operation for e in events_of(events, StepReconciling)]
    assert reconciled == ([] if resent else [operation] * replies)
    assert len(events_of(events, ApiOutcomeUnknown)) == (0 if resent else replies)


@pytest.mark.parametrize("durations", [Durations(listing_lag=40.0)])
def test_a_lost_create_snapshot_makes_one_backup_even_while_listings_lag(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus) -> None:
    # The snapshot the lost call made is listed 40 s later: after the reconcile's first
    # look (5 s), found by a later one. Before: a second backup.
    fleet = swap_fleet(sandbox, clients, clock, bus, 2,
                       lambda: sandbox.lose_replies("CreateSnapshot"))

    assert sent(sandbox, "CreateSnapshot") == lost(sandbox, "CreateSnapshot") == 2
    for target in fleet.targets:
        assert len(backups(sandbox, target)) == 1


def test_a_create_snapshot_that_failed_with_a_500_is_made_after_looking_again(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus) -> None:
    # A 500 that did nothing: no snapshot ever shows; after looking for two minutes the
    # step makes its backup.
    fleet = swap_fleet(sandbox, clients, clock, bus, 1, lambda: sandbox.fail(
        "CreateSnapshot", "InternalError", "An internal error has occurred.", times=1))

    assert sent(sandbox, "CreateSnapshot") == 2
    assert len(backups(sandbox, fleet.targets[0])) == 1
    # The first look, then six more (2 s to 64 s apart), then the create.
    assert sent(sandbox, "DescribeSnapshots") >= 8


@pytest.mark.parametrize("durations", [Durations(ssm_command=2.0, listing_lag=15.0)])
def test_a_lost_send_command_runs_the_repair_once_even_if_it_ended_before_the_look(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus) -> None:
    # The lost command ends in 2 s, before the reconcile looks (5 s), and is listed only
    # after 15 s. Before: the repair was sent (and run) a second time.
    swap_fleet(sandbox, clients, clock, bus, 2, lambda: sandbox.lose_replies("SendCommand"))

    assert sent(sandbox, "SendCommand") == lost(sandbox, "SendCommand") == 2


def test_a_lost_run_instances_launches_one_rescue_instance(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus) -> None:
    # The launch, and its first resend.
    swap_fleet(sandbox, clients, clock, bus, 2,
               lambda: sandbox.lose_replies("RunInstances", times=2))

    assert sent(sandbox, "RunInstances") == 3  # with the same ClientToken each time
    assert len(launched_rescues(sandbox)) == 1


@pytest.mark.parametrize(("operation", "replies"), [
    ("TerminateInstances", 1),
    ("DetachVolume", 2),  # off its instance (a step), then off the rescue one (cleanup)
])
def test_the_rescue_pool_cleanup_reconciles_lost_replies(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        operation: str, replies: int) -> None:
    # The volume is left on the rescue instance (no release step): the end-of-run cleanup
    # detaches it and terminates the instance, and loses those replies. Before: the
    # cleanup failed on the lost DetachVolume and kept the rescue instance.
    fleet = sandbox.build_fleet(FleetSpec(plain=1, azs=1))
    ami = fleet.regions[REGION].rescue_windows_ami
    pb = playbook(step("stop", "ec2.stop"), step("detach", "ec2.detach_root"),
                  step("attach", "rescue.attach_volume", {"rescue_image_id": ami}))
    sandbox.lose_replies(operation, times=replies)

    result = run(sandbox, clients, clock, bus, pb, fleet)

    assert result.summary == {"succeeded": 1}, result.errors
    assert result.cleanup_errors == ()
    assert rescue_instances(sandbox) == []
    volume = sandbox.client("ec2", config=NO_RETRIES).describe_volumes(
        VolumeIds=[fleet.targets[0].root_volume_id])["Volumes"][0]
    assert (volume["State"], volume["Attachments"]) == ("available", [])
    assert lost(sandbox, operation) == replies


@pytest.mark.parametrize(("times", "replies"), [
    (3, 3),  # resent with its ClientToken until a reply comes: the same task
    # Every reply lost: 10 sends each (the retry limit), then the step reconciles and
    # finds its task by its tags.
    (None, 20),
])
def test_a_lost_replace_root_task_is_the_same_task_when_resent(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        times: int | None, replies: int) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=0, instance_store=2, azs=1))
    pb = playbook(step("backup", "ec2.snapshot_root"),
                  step("replace", "ec2.replace_root", {"restore_to": "launch-state"}),
                  step("verify", "ec2.verify_status"))
    sandbox.lose_replies("CreateReplaceRootVolumeTask", times=times)

    result = run(sandbox, clients, clock, bus, pb, fleet,
                 accepted={"root-replacement-data-loss"})

    assert result.summary == {"succeeded": 2}, result.errors
    ec2 = sandbox.client("ec2", config=NO_RETRIES)
    for target in fleet.targets:
        tasks = ec2.describe_replace_root_volume_tasks(Filters=[
            {"Name": "instance-id", "Values": [target.instance_id]}])["ReplaceRootVolumeTasks"]
        assert [t["TaskState"] for t in tasks] == ["succeeded"]
    assert lost(sandbox, "CreateReplaceRootVolumeTask") == replies


def test_an_outcome_aws_never_settles_interrupts_the_target_off_the_failure_budget(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event]) -> None:
    # AttachVolume answers 500 without attaching, six times running: the step cannot
    # learn what happened. The target is rolled back (its root volume back in place) and
    # ends interrupted; with no failure allowed, the next batch still runs.
    fleet = sandbox.build_fleet(FleetSpec(plain=2, azs=1))
    guards = Guards(batches=(BatchSize(count=1),), max_failure_percent=0.0,
                    pause_after_canary=False)
    pb = swap_playbook(fleet.regions[REGION].rescue_windows_ami, guards=guards)
    sandbox.fail("AttachVolume", "InternalError", "An internal error has occurred.", times=6)
    journal = Journal.memory()

    result = run(sandbox, clients, clock, bus, pb, fleet, journal=journal)

    first, second = fleet.targets
    key = f"default/{REGION}/{first.instance_id}"
    assert result.summary == {"interrupted": 1, "succeeded": 1}
    assert not result.budget_exhausted
    assert result.errors[key] == (
        "step attach: AttachVolume outcome unknown (InternalError: An internal error has "
        "occurred.); AWS's state did not settle it after 5 reconciliations; rolled back "
        "to where it was; `remediate resume` starts it again")
    assert root_in_place(sandbox, first) and fixed(sandbox, second)
    assert len(events_of(events, StepReconciling)) == 5
    assert rescue_instances(sandbox) == []
    # Put back where it was, not failed: resume starts it again from its first step.
    assert journal.targets("lost-1")[key].phase == "restart"
    resumed = resuming(journal, pb, clients=clients, clock=clock, bus=EventBus()).run()
    assert resumed.summary == {"succeeded": 2}
    assert fixed(sandbox, first)


class Crash(BaseException):
    """The process dies (as if killed) in the middle of the scheduler's work."""


@pytest.mark.parametrize("durations", [Durations(ssm_command=2.0, listing_lag=15.0)])
def test_a_repair_sent_just_before_a_crash_is_not_run_again_by_resume(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        tmp_path: Path) -> None:
    # The tool dies with SendCommand sent and its answer unread (journaled "sent"); the
    # command runs and ends. The resumed step adopts it (its result is the step's)
    # instead of running the repair a second time.
    fleet = sandbox.build_fleet(FleetSpec(plain=1, azs=1))
    pb = swap(sandbox, fleet)
    journal = Journal(tmp_path / "run.journal")
    answer = journal.call_results

    def dying(call_ids: Sequence[int], at: datetime, **kwargs: Any) -> None:
        if any(c.call_id in call_ids and c.operation == "SendCommand"
               for c in journal.calls("lost-1")):
            raise Crash("killed before SendCommand's answer was journaled")
        answer(call_ids, at, **kwargs)

    journal.call_results = dying  # type: ignore[method-assign]
    with pytest.raises(Crash):
        run(sandbox, clients, clock, bus, pb, fleet, journal=journal)
    assert sent(sandbox, "SendCommand") == 1

    result = resume(tmp_path / "run.journal", pb, clients=clients, clock=clock, bus=bus)

    assert all_fixed(sandbox, fleet, result), result.errors
    assert sent(sandbox, "SendCommand") == 1
