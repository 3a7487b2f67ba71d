"""ec2.replace_root: the same end on both engines (tests/export/parity_support.py).

Every target's end: its state, whether its original root is in place, whether the root
it boots from carries the channel file, the original volume's state (kept, never
deleted), and the replacement tasks AWS holds for it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from parity_support import both_engines
from sfn_support import NO_RETRIES, REGION, ec2_targets, end_state, from_text, run_one_target

from remediate.clock import VirtualClock
from remediate.executor.engine import Executor
from remediate.executor.events import EventBus
from remediate.export.moto_engine import MotoStepFunctions
from remediate.journal import Journal
from remediate.sandbox import Durations, Fleet, FleetSpec, Sandbox

ACCEPTED = frozenset({"root-replacement-data-loss"})
PLAYBOOK = """
version: 1
name: parity-replace-root
parameters:
  snapshot_id: {type: string}
targets: {kind: ec2-instance, tags: {incident: crowdstrike-2024-07-19}}
steps:
  - id: replace
    action: ec2.replace_root
    with: %s
%s
guards: {batches: [100%%], max_failure_percent: 100, pause_after_canary: false,
         skip_healthy: false}
"""
LAUNCH_STATE = "{restore_to: launch-state}"
UNDO = """  - id: sabotage
    action: control.fail
    with: {message: no luck}
rollback:
  - id: undo
    action: ec2.replace_root
    when: {value: steps.replace.outputs.previous_volume_id, exists: true}
    with: {volume_id: "${{ steps.replace.outputs.previous_volume_id }}"}"""


def roots(sb: Sandbox, fleet: Fleet) -> Counter[tuple[Any, ...]]:
    ec2 = sb.client("ec2", REGION, NO_RETRIES)
    found: Counter[tuple[Any, ...]] = Counter()
    for target in fleet.targets:
        end = end_state(sb, target)
        instance = ec2.describe_instances(InstanceIds=[target.instance_id])[
            "Reservations"][0]["Instances"][0]
        root = next(m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]
                    if m["DeviceName"] == target.root_device_name)
        original = ec2.describe_volumes(VolumeIds=[target.root_volume_id])["Volumes"][0]
        tasks = ec2.describe_replace_root_volume_tasks(Filters=[
            {"Name": "instance-id", "Values": [target.instance_id]}])["ReplaceRootVolumeTasks"]
        found[(end.state, end.root_in_place, sb.channel_file_present(root), original["State"],
               tuple(sorted(t["TaskState"] for t in tasks)))] += 1
    return found


def clean_snapshot(sb: Sandbox, fleet: Fleet, clock: VirtualClock) -> dict[str, Any]:
    """A completed snapshot of a volume without the channel file (from before the
    incident)."""
    ec2 = sb.client("ec2", REGION, NO_RETRIES)
    volume = ec2.create_volume(AvailabilityZone=fleet.targets[0].availability_zone,
                               Size=30)["VolumeId"]
    snapshot = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    clock.advance(sb.durations.snapshot)
    return {"snapshot_id": snapshot}


def test_replace_to_the_launch_state_keeps_the_old_root() -> None:
    found = both_engines(FleetSpec(plain=2, azs=1), PLAYBOOK % (LAUNCH_STATE, ""), roots,
                         accepted=ACCEPTED)

    assert found.local == found.stepfunctions == Counter(
        {("running", False, False, "available", ("succeeded",)): 2})
    assert (found.local_statuses, found.sfn_status) == ({"succeeded": 2}, "SUCCEEDED")


def test_replace_from_a_snapshot() -> None:
    found = both_engines(FleetSpec(plain=2, azs=1),
                         PLAYBOOK % ('{snapshot_id: "${{ params.snapshot_id }}"}', ""), roots,
                         prepare=clean_snapshot, accepted=ACCEPTED)

    assert found.local == found.stepfunctions == Counter(
        {("running", False, False, "available", ("succeeded",)): 2})


def test_a_lost_reply_makes_no_second_replacement() -> None:
    def lose_one(sb: Sandbox, fleet: Fleet, clock: VirtualClock) -> dict[str, Any]:
        sb.lose_replies("CreateReplaceRootVolumeTask", times=1)
        return {}

    found = both_engines(FleetSpec(plain=2, azs=1), PLAYBOOK % (LAUNCH_STATE, ""), roots,
                         prepare=lose_one, accepted=ACCEPTED)

    # The ClientToken makes the resent call answer with the task the lost one started.
    assert found.local == found.stepfunctions == Counter(
        {("running", False, False, "available", ("succeeded",)): 2})


def test_a_retried_step_takes_up_its_own_task() -> None:
    # The first attempt gives up waiting (1 minute; the replacement takes 2); the retry
    # finds the task it started, by its tags, and waits for that one.
    impatient = PLAYBOOK % ("{restore_to: launch-state, timeout: 1m}\n"
                            "    retries: {attempts: 2, delay: 5m, jitter: false}", "")
    found = both_engines(FleetSpec(plain=2, azs=1), impatient, roots, accepted=ACCEPTED)

    assert found.local == found.stepfunctions == Counter(
        {("running", False, False, "available", ("succeeded",)): 2})
    assert (found.local_statuses, found.sfn_status) == ({"succeeded": 2}, "SUCCEEDED")


def test_a_stopped_instance_fails_before_any_replacement() -> None:
    def stopped(sb: Sandbox, fleet: Fleet, clock: VirtualClock) -> dict[str, Any]:
        sb.client("ec2", REGION, NO_RETRIES).stop_instances(InstanceIds=fleet.instance_ids())
        clock.advance(sb.durations.instance_stop + 1)
        return {}

    found = both_engines(FleetSpec(plain=2, azs=1), PLAYBOOK % (LAUNCH_STATE, ""), roots,
                         prepare=stopped, accepted=ACCEPTED)

    assert found.local == found.stepfunctions == Counter(
        {("stopped", True, True, "in-use", ()): 2})
    assert (found.local_statuses, found.sfn_status) == ({"failed": 2}, "SUCCEEDED")


def test_rollback_puts_the_original_root_back() -> None:
    found = both_engines(FleetSpec(plain=2, azs=1), PLAYBOOK % (LAUNCH_STATE, UNDO), roots,
                         accepted=ACCEPTED)

    # Replaced, then replaced again with the kept original: two tasks, the original root
    # (still broken) in place.
    assert found.local == found.stepfunctions == Counter(
        {("running", True, True, "in-use", ("succeeded", "succeeded")): 2})
    assert found.local_statuses == {"rolled_back": 2}


# The replacement only if the reboot did not help: judged at that step, not before.
AFTER_REBOOT = """
version: 1
name: parity-replace-after-reboot
targets: {kind: ec2-instance, tags: {incident: crowdstrike-2024-07-19}}
steps:
  - id: reboot
    action: ec2.reboot
    with: {times: 1, timeout: 2m, settle: 1m}
  - id: replace
    action: ec2.replace_root
    when: {value: steps.reboot.outputs.healthy, equals: false}
    with: {restore_to: launch-state}
guards: {batches: [100%], max_failure_percent: 100, pause_after_canary: false,
         skip_healthy: false}
"""


def test_a_step_not_accepted_stops_the_target_there_on_both_engines() -> None:
    found = both_engines(FleetSpec(plain=1, reboot_fixable=1, reboots_to_fix=1, azs=1),
                         AFTER_REBOOT, roots)

    # The reboot fixed one; the other stops, untouched, where the data loss would start.
    assert found.local == found.stepfunctions == Counter(
        {("running", True, False, "in-use", ()): 1, ("running", True, True, "in-use", ()): 1})
    assert found.local_statuses == {"succeeded": 1, "refused": 1}


def test_a_step_accepted_runs_on_both_engines() -> None:
    found = both_engines(FleetSpec(plain=1, reboot_fixable=1, reboots_to_fix=1, azs=1),
                         AFTER_REBOOT, roots, accepted=ACCEPTED)

    assert found.local == found.stepfunctions == Counter(
        {("running", True, False, "in-use", ()): 1,
         ("running", False, False, "available", ("succeeded",)): 1})
    assert found.local_statuses == {"succeeded": 2}


def test_the_stopped_target_says_why_in_the_same_words_on_both_engines() -> None:
    why = ("stopped before step replace: root-replacement-data-loss not accepted (--accept "
           "root-replacement-data-loss): replacing the root volume discards what was "
           "written after the chosen snapshot")
    playbook, params = from_text(AFTER_REBOOT)
    clock = VirtualClock()
    with Sandbox(clock=clock, durations=Durations()) as sb:
        (target,) = ec2_targets(sb.build_fleet(FleetSpec(plain=1, azs=1)).targets)
        local = Executor(playbook, [target],
                         clients=lambda _a, region, service: sb.client(service, region,
                                                                        NO_RETRIES),
                         clock=clock, bus=EventBus(), journal=Journal.memory(),
                         run_id="local-1", params=params).run()
    clock = VirtualClock()
    with MotoStepFunctions(clock) as engine, Sandbox(clock=clock, durations=Durations()) as sb:
        (remote,) = ec2_targets(sb.build_fleet(FleetSpec(plain=1, azs=1)).targets)
        outcome = run_one_target(sb, engine, playbook, params, remote)
        created = sb.api_call_counts()[("ec2", "CreateReplaceRootVolumeTask")]

    assert (local.statuses[target.key], local.errors[target.key]) == ("refused", why)
    assert (outcome.status, outcome.error, outcome.cause) == (
        "FAILED", "remediate.Refused", why)
    assert created == 0
