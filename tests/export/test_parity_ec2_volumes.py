"""ec2.snapshot_root, ec2.detach_root, ec2.reattach_root and ec2.restore_root_settings: the
same end on both engines.

Each runs in a short playbook locally and, exported, on moto's Step Functions, on a fresh
sandbox fleet of the same shape (tests/export/parity_support.py): from the state the
swap is meant for, from a state it already reached (the step reconciles: nothing is
sent again), after a lost reply (the call took effect, its answer did not come), and
where it must refuse.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import yaml
from parity_support import both_engines, one_step
from sfn_support import NO_RETRIES, REGION

from remediate.actions.ec2_inspect import ROOT_OF_TAG
from remediate.clock import VirtualClock
from remediate.sandbox import Durations, Fleet, FleetSpec, Sandbox

PLAIN = FleetSpec(plain=2, azs=1)
# Mutating calls counted: the volume actions' own. (Locally, CreateTags also claims
# targets, and StopInstances and StartInstances are merged across targets: their effects
# are observed instead.)
MUTATING = ("CreateSnapshot", "DetachVolume", "AttachVolume", "ModifyInstanceAttribute")


@dataclass(frozen=True)
class RootEnd:
    """Where a target's original root volume ended, without ids."""

    instance: str  # the instance's state
    root: str  # "home" (at the root device), "available", "elsewhere" (another instance)
    delete_on_termination: bool | None  # of the mapping at the root device, if any
    root_of_tag: bool  # tagged remediate:root-of (ec2.detach_root says whose root it is)
    backups: tuple[str, ...]  # states of the backups of the root volume


def root_end(sb: Sandbox, target: Any) -> RootEnd:
    ec2 = sb.client("ec2", target.region, config=NO_RETRIES)
    instance = ec2.describe_instances(InstanceIds=[target.instance_id])[
        "Reservations"][0]["Instances"][0]
    mapping = {m["DeviceName"]: m["Ebs"] for m in instance["BlockDeviceMappings"]}
    volume = ec2.describe_volumes(VolumeIds=[target.root_volume_id])["Volumes"][0]
    holder = volume["Attachments"][0] if volume["Attachments"] else None
    if holder is None:
        root = volume["State"]
    elif (holder["InstanceId"], holder["Device"]) == (target.instance_id,
                                                      target.root_device_name):
        root = "home"
    else:
        root = "elsewhere"
    at_root = mapping.get(target.root_device_name)
    snapshots = ec2.describe_snapshots(OwnerIds=["self"], Filters=[
        {"Name": "volume-id", "Values": [target.root_volume_id]},
        {"Name": "tag:remediate:purpose", "Values": ["backup"]}])["Snapshots"]
    return RootEnd(instance["State"]["Name"], root,
                   None if at_root is None else at_root["DeleteOnTermination"],
                   ROOT_OF_TAG in {t["Key"] for t in volume.get("Tags", [])},
                   tuple(sorted(s["State"] for s in snapshots)))


def ends(sb: Sandbox, fleet: Fleet) -> Counter[RootEnd]:
    return Counter(root_end(sb, t) for t in fleet.targets)


def ends_and_calls(sb: Sandbox, fleet: Fleet) -> tuple[Counter[RootEnd], dict[str, int]]:
    """The ends, and how many mutating calls of each kind AWS received (lost replies
    included)."""
    counts = sb.api_call_counts()
    return ends(sb, fleet), {op: n for (_, op), n in sorted(counts.items())
                             if op in MUTATING and n}


def playbook(*steps: dict[str, Any], parameters: dict[str, Any] | None = None) -> str:
    """One step after the other on the sandbox's targets, all in one batch."""
    document = yaml.safe_load(one_step("ec2.stop"))
    document["steps"] = list(steps)
    if parameters:
        document["parameters"] = parameters
    return yaml.safe_dump(document, sort_keys=False)


def step(action: str, step_id: str | None = None, **params: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"id": step_id or action.split(".")[1], "action": action}
    if params:
        found["with"] = params
    return found


def stopped(sb: Sandbox, fleet: Fleet, clock: VirtualClock) -> dict[str, Any]:
    sb.client("ec2", REGION, config=NO_RETRIES).stop_instances(
        InstanceIds=fleet.instance_ids())
    clock.advance(sb.durations.instance_stop + 1)
    return {}


def losing(operation: str, times: int | None = None) -> Any:
    """A prepare that makes AWS lose the replies to ``operation`` (after it took effect):
    every one, or the first ``times``."""
    def prepare(sb: Sandbox, _fleet: Fleet, _clock: VirtualClock) -> dict[str, Any]:
        sb.lose_replies(operation, times=times)
        return {}

    return prepare


# ---- ec2.snapshot_root ---------------------------------------------------------------


def test_snapshot_root_takes_one_completed_backup_per_target() -> None:
    found = both_engines(PLAIN, one_step("ec2.snapshot_root"), ends_and_calls)

    backed_up = RootEnd("running", "home", True, False, ("completed",))
    assert found.local == found.stepfunctions == (Counter({backed_up: 2}),
                                                  {"CreateSnapshot": 2})
    assert (found.local_statuses, found.sfn_status) == ({"succeeded": 2}, "SUCCEEDED")


def test_snapshot_root_after_a_lost_create_snapshot_reply_keeps_the_one_it_made() -> None:
    # AWS made each snapshot and lost the reply: the step reconciles, finds the backup
    # by its tags and takes no second one.
    found = both_engines(PLAIN, one_step("ec2.snapshot_root"), ends_and_calls,
                         prepare=losing("CreateSnapshot"))

    backed_up = RootEnd("running", "home", True, False, ("completed",))
    assert found.local == found.stepfunctions == (Counter({backed_up: 2}),
                                                  {"CreateSnapshot": 2})
    assert found.local_statuses == found.sfn_statuses == {"succeeded": 2}


def test_snapshot_root_after_a_lost_reply_looks_again_while_listings_lag() -> None:
    # The snapshot the lost call made is listed only 40 s after it was made: the step
    # looks again (2 s, 4 s, 8 s, ... apart) until it shows, and takes no second backup.
    found = both_engines(FleetSpec(plain=1, azs=1), one_step("ec2.snapshot_root"),
                         ends_and_calls, prepare=losing("CreateSnapshot"),
                         durations=Durations(listing_lag=40.0))

    backed_up = RootEnd("running", "home", True, False, ("completed",))
    assert found.local == found.stepfunctions == (Counter({backed_up: 1}),
                                                  {"CreateSnapshot": 1})
    assert found.local_statuses == found.sfn_statuses == {"succeeded": 1}


def test_snapshot_root_run_again_reuses_the_backup_its_first_attempt_made() -> None:
    # The first attempt's wait times out (a snapshot takes a minute here); the retry finds
    # that attempt's backup and waits for it instead of taking another. (One target: on
    # moto every iteration's waits move the shared clock on, so the timing of two would
    # not be the local run's.)
    text = playbook({**step("ec2.snapshot_root", "backup", timeout="40s"),
                     "retries": {"attempts": 2, "delay": "5s"}})

    found = both_engines(FleetSpec(plain=1, azs=1), text, ends_and_calls)

    backed_up = RootEnd("running", "home", True, False, ("completed",))
    assert found.local == found.stepfunctions == (Counter({backed_up: 1}),
                                                  {"CreateSnapshot": 1})
    assert found.local_statuses == found.sfn_statuses == {"succeeded": 1}


def test_snapshot_root_of_a_volume_that_does_not_exist_fails_and_makes_nothing() -> None:
    text = one_step("ec2.snapshot_root", {"volume_id": "vol-0123456789abcdef0"})

    # (The calls are not compared: locally the executor asks again for a NotFound, which
    # can be AWS's eventual consistency; the exported call does not.)
    found = both_engines(PLAIN, text, ends)

    untouched = RootEnd("running", "home", True, False, ())
    assert found.local == found.stepfunctions == Counter({untouched: 2})
    assert found.local_statuses == found.sfn_statuses == {"failed": 2}


# ---- ec2.detach_root -----------------------------------------------------------------

DETACHED = RootEnd("stopped", "available", None, True, ())


def test_detach_root_leaves_the_root_volume_available_and_tagged() -> None:
    found = both_engines(PLAIN, one_step("ec2.detach_root"), ends_and_calls, prepare=stopped)

    assert found.local == found.stepfunctions == (Counter({DETACHED: 2}),
                                                  {"DetachVolume": 2})
    assert found.local_statuses == found.sfn_statuses == {"succeeded": 2}


def test_detach_root_of_a_volume_already_detached_sends_nothing() -> None:
    text = playbook(step("ec2.detach_root"), step("ec2.detach_root", "detach_again"))

    found = both_engines(PLAIN, text, ends_and_calls, prepare=stopped)

    assert found.local == found.stepfunctions == (Counter({DETACHED: 2}),
                                                  {"DetachVolume": 2})
    assert found.local_statuses == found.sfn_statuses == {"succeeded": 2}


def test_detach_root_after_a_lost_detach_reply_finishes_the_detach() -> None:
    found = both_engines(PLAIN, one_step("ec2.detach_root"), ends_and_calls,
                         prepare=lambda sb, fleet, clock: {
                             **stopped(sb, fleet, clock), **losing("DetachVolume")(
                                 sb, fleet, clock)})

    assert found.local == found.stepfunctions == (Counter({DETACHED: 2}),
                                                  {"DetachVolume": 2})
    assert found.local_statuses == found.sfn_statuses == {"succeeded": 2}


def test_detach_root_refuses_a_running_instance() -> None:
    found = both_engines(PLAIN, one_step("ec2.detach_root"), ends_and_calls)

    untouched = RootEnd("running", "home", True, False, ())
    assert found.local == found.stepfunctions == (Counter({untouched: 2}), {})
    assert found.local_statuses == found.sfn_statuses == {"failed": 2}


# ---- ec2.reattach_root ---------------------------------------------------------------

SWAP = (step("ec2.stop"), step("ec2.detach_root"))
# Attaching a volume sets its DeleteOnTermination to false (ec2.restore_root_settings
# puts it back).
BACK = RootEnd("stopped", "home", False, True, ())


def test_reattach_root_puts_the_detached_root_volume_back() -> None:
    found = both_engines(PLAIN, playbook(*SWAP, step("ec2.reattach_root")), ends_and_calls)

    assert found.local == found.stepfunctions == (
        Counter({BACK: 2}), {"AttachVolume": 2, "DetachVolume": 2})
    assert found.local_statuses == found.sfn_statuses == {"succeeded": 2}


def test_reattach_root_of_a_root_volume_in_place_sends_nothing() -> None:
    found = both_engines(PLAIN, one_step("ec2.reattach_root"), ends_and_calls,
                         prepare=stopped)

    in_place = RootEnd("stopped", "home", True, False, ())
    assert found.local == found.stepfunctions == (Counter({in_place: 2}),
                                                  {})
    assert found.local_statuses == found.sfn_statuses == {"succeeded": 2}


def test_reattach_root_after_a_lost_attach_reply_does_not_attach_twice() -> None:
    found = both_engines(PLAIN, playbook(*SWAP, step("ec2.reattach_root")), ends_and_calls,
                         prepare=losing("AttachVolume"))

    assert found.local == found.stepfunctions == (
        Counter({BACK: 2}), {"AttachVolume": 2, "DetachVolume": 2})
    assert found.local_statuses == found.sfn_statuses == {"succeeded": 2}


def test_reattach_root_takes_the_volume_off_the_rescue_instance_first() -> None:
    # The swap's middle: the root volume on a rescue instance. ec2.detach_root run again
    # finds it there (its part done, nothing sent); ec2.reattach_root takes it off and
    # puts it back; ec2.restore_root_settings restores the flag and starts the instance.
    def rescue_image(sb: Sandbox, fleet: Fleet, _clock: VirtualClock) -> dict[str, Any]:
        return {"rescue_image_id": fleet.regions[REGION].rescue_windows_ami}

    text = playbook(*SWAP, step("rescue.attach_volume", "attach",
                                rescue_image_id="${{ params.rescue_image_id }}"),
                    step("ec2.detach_root", "detach_again"), step("ec2.reattach_root"),
                    step("ec2.restore_root_settings"),
                    parameters={"rescue_image_id": {"type": "string"}})

    found = both_engines(PLAIN, text, ends_and_calls, prepare=rescue_image)

    restored = RootEnd("running", "home", True, True, ())
    local, remote = found.local, found.stepfunctions
    assert local[0] == remote[0] == Counter({restored: 2})
    # Off the instance, onto the rescue instance, off it, back: each once per target.
    for calls in (local[1], remote[1]):
        assert (calls["DetachVolume"], calls["AttachVolume"]) == (4, 4)
    assert found.local_statuses == found.sfn_statuses == {"succeeded": 2}


def test_reattach_root_refuses_to_displace_another_volume_at_the_root_device() -> None:
    # Someone put another volume at /dev/sda1 while the root volume was off.
    def intruder(sb: Sandbox, fleet: Fleet, clock: VirtualClock) -> dict[str, Any]:
        stopped(sb, fleet, clock)
        ec2 = sb.client("ec2", REGION, config=NO_RETRIES)
        target = fleet.targets[0]
        ec2.detach_volume(VolumeId=target.root_volume_id)
        other = ec2.create_volume(AvailabilityZone=target.availability_zone, Size=30)
        clock.advance(sb.durations.volume_detach + 1)
        ec2.attach_volume(VolumeId=other["VolumeId"], InstanceId=target.instance_id,
                          Device=target.root_device_name)
        clock.advance(sb.durations.volume_attach + 1)
        return {"volume_id": target.root_volume_id}

    text = playbook(step("ec2.reattach_root", volume_id="${{ params.volume_id }}"),
                    parameters={"volume_id": {"type": "string"}})

    found = both_engines(FleetSpec(plain=1, azs=1), text, ends, prepare=intruder)

    assert found.local == found.stepfunctions == Counter(
        {RootEnd("stopped", "available", False, False, ()): 1})
    assert found.local_statuses == found.sfn_statuses == {"failed": 1}


# ---- ec2.restore_root_settings -------------------------------------------------------


def test_restore_root_settings_puts_the_flag_back_and_starts_what_ran() -> None:
    text = playbook(*SWAP, step("ec2.reattach_root"), step("ec2.restore_root_settings"))

    found = both_engines(PLAIN, text, ends)

    assert found.local == found.stepfunctions == Counter(
        {RootEnd("running", "home", True, True, ()): 2})
    assert found.local_statuses == found.sfn_statuses == {"succeeded": 2}


def test_restore_root_settings_asked_not_to_start_leaves_the_instance_stopped() -> None:
    text = playbook(*SWAP, step("ec2.reattach_root"),
                    step("ec2.restore_root_settings", start=False))

    found = both_engines(PLAIN, text, ends_and_calls)

    assert found.local == found.stepfunctions == (
        Counter({RootEnd("stopped", "home", True, True, ()): 2}),
        {"AttachVolume": 2, "DetachVolume": 2, "ModifyInstanceAttribute": 2})
    assert found.local_statuses == found.sfn_statuses == {"succeeded": 2}


def test_restore_root_settings_of_settings_in_place_sends_nothing() -> None:
    found = both_engines(PLAIN, one_step("ec2.restore_root_settings"), ends_and_calls)

    assert found.local == found.stepfunctions == (
        Counter({RootEnd("running", "home", True, False, ()): 2}), {})
    assert found.local_statuses == found.sfn_statuses == {"succeeded": 2}


def test_restore_root_settings_after_a_lost_modify_reply_ends_the_same() -> None:
    text = playbook(*SWAP, step("ec2.reattach_root"), step("ec2.restore_root_settings"))

    # (Each target's first reply lost: ModifyInstanceAttribute is safe to send again, and
    # is, on both engines.)
    found = both_engines(PLAIN, text, ends, prepare=losing("ModifyInstanceAttribute", 2))

    assert found.local == found.stepfunctions == Counter(
        {RootEnd("running", "home", True, True, ()): 2})
    assert found.local_statuses == found.sfn_statuses == {"succeeded": 2}


def test_restore_root_settings_without_the_root_volume_back_fails() -> None:
    text = playbook(*SWAP, step("ec2.restore_root_settings"))

    found = both_engines(PLAIN, text, ends_and_calls)

    assert found.local == found.stepfunctions == (
        Counter({RootEnd("stopped", "available", None, True, ()): 2}),
        {"DetachVolume": 2})
    assert found.local_statuses == found.sfn_statuses == {"failed": 2}
