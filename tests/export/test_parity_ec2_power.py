"""ec2.stop, ec2.start, ec2.reboot and ec2.verify_status: the same end on both engines.

Each runs as a one-step playbook locally and, exported, on moto's Step Functions, on a
fresh sandbox fleet of the same shape (tests/export/parity_support.py).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import yaml
from parity_support import both_engines, one_step
from sfn_support import (
    FIXED,
    NO_RETRIES,
    UNTOUCHED_BROKEN,
    EndState,
    Outcome,
    ec2_targets,
    end_state,
    from_text,
    run_one_target,
)

from remediate.clock import VirtualClock
from remediate.executor.engine import Executor
from remediate.executor.events import EventBus
from remediate.export.moto_engine import MotoStepFunctions
from remediate.journal import Journal
from remediate.sandbox import Durations, Fleet, FleetSpec, Sandbox


def states(sb: Sandbox, fleet: Fleet) -> Counter[tuple[str, EndState]]:
    return Counter((t.kind, end_state(sb, t)) for t in fleet.targets)


def stopped_first(sb: Sandbox, fleet: Fleet, clock: VirtualClock) -> dict[str, Any]:
    ec2 = sb.client("ec2", "us-east-1", NO_RETRIES)
    ec2.stop_instances(InstanceIds=fleet.instance_ids())
    clock.advance(sb.durations.instance_stop + 1)
    return {}


def test_stop_brings_every_instance_to_stopped() -> None:
    found = both_engines(FleetSpec(plain=2, azs=1), one_step("ec2.stop"), states)

    stopped = EndState("stopped", True, True, False)
    assert found.local == found.stepfunctions == Counter({("plain", stopped): 2})
    assert (found.local_statuses, found.sfn_status) == ({"succeeded": 2}, "SUCCEEDED")


def test_start_brings_a_stopped_instance_back_to_running() -> None:
    found = both_engines(FleetSpec(plain=2, azs=1), one_step("ec2.start"), states,
                         prepare=stopped_first)

    assert found.local == found.stepfunctions
    assert {state.state for (_, state) in found.local} == {"running"}
    assert found.local_statuses == {"succeeded": 2}


def stopped_without_capacity(sb: Sandbox, fleet: Fleet, clock: VirtualClock) -> dict[str, Any]:
    stopped_first(sb, fleet, clock)
    sb.set_capacity("m5.large", "us-east-1a", 0)
    return {}


def starts(sb: Sandbox, fleet: Fleet) -> Counter[tuple[str, int]]:
    """Each instance's state, and how many StartInstances named it."""
    return Counter((end_state(sb, t).state,
                    sum(1 for c in sb.api_calls if c.operation == "StartInstances"
                        and not c.throttled and c.names(t.instance_id)))
                   for t in fleet.targets)


def test_start_without_capacity_tries_four_times_then_fails_on_both_engines() -> None:
    found = both_engines(FleetSpec(plain=1, azs=1), one_step("ec2.start"), starts,
                         prepare=stopped_without_capacity)

    assert found.local == found.stepfunctions == Counter({("stopped", 4): 1})
    assert found.local_statuses == {"failed": 1}


def test_reboot_fixes_the_reboot_fixable_and_reports_the_rest_unhealthy() -> None:
    found = both_engines(FleetSpec(plain=1, reboot_fixable=2, azs=1),
                         one_step("ec2.reboot", {"times": 3}), states)

    assert found.local == found.stepfunctions == Counter(
        {("reboot_fixable", FIXED): 2, ("plain", UNTOUCHED_BROKEN): 1})
    # The step succeeds either way: outputs.healthy says whether it worked.
    assert found.local_statuses == {"succeeded": 3}


def test_verify_status_fails_the_targets_whose_checks_do_not_pass() -> None:
    found = both_engines(FleetSpec(plain=1, azs=1), one_step("ec2.verify_status",
                                                             {"timeout": "2m"}), states)

    assert found.local == found.stepfunctions == Counter({("plain", UNTOUCHED_BROKEN): 1})
    assert found.local_statuses == {"failed": 1}


def held_then_started() -> str:
    """Stop holding capacity, wait while the AZ runs out, start."""
    document = yaml.safe_load(one_step("ec2.stop", {"hold_capacity": True}))
    document["steps"] += [{"id": "pause", "action": "control.pause", "with": {"duration": "15m"}},
                          {"id": "start", "action": "ec2.start"}]
    return yaml.safe_dump(document, sort_keys=False)


def exhausted_while_stopped(sb: Sandbox, fleet: Fleet, clock: VirtualClock) -> dict[str, Any]:
    sb.set_capacity("m5.large", "us-east-1a", 0, at=clock.now() + 400)
    return {}


def holds(sb: Sandbox, fleet: Fleet) -> tuple[Counter[str], Counter[str], int]:
    """The instances' states, the reservations' states, and how many were made."""
    found = sb.client("ec2", "us-east-1", NO_RETRIES).describe_capacity_reservations()
    return (Counter(end_state(sb, t).state for t in fleet.targets),
            Counter(r["State"] for r in found["CapacityReservations"]),
            sb.capacity_reservations_created)


def test_held_capacity_carries_the_targets_through_an_az_running_out_on_both_engines() -> None:
    found = both_engines(FleetSpec(plain=2, azs=1), held_then_started(), holds,
                         prepare=exhausted_while_stopped)

    assert found.local == found.stepfunctions == (
        Counter({"running": 2}), Counter({"cancelled": 2}), 2)
    assert (found.local_statuses, found.sfn_status) == ({"succeeded": 2}, "SUCCEEDED")


def test_a_target_that_fails_after_its_stop_holds_nothing_at_the_end_on_both_engines() -> None:
    document = yaml.safe_load(one_step("ec2.stop", {"hold_capacity": True}))
    document["steps"].append({"id": "broken", "action": "control.fail",
                              "with": {"message": "repair failed"}})
    found = both_engines(FleetSpec(plain=2, azs=1), yaml.safe_dump(document), holds)

    # Locally the run's end cancels it; on Step Functions the iteration's cleanup.
    assert found.local == found.stepfunctions == (
        Counter({"stopped": 2}), Counter({"cancelled": 2}), 2)
    assert found.local_statuses == {"failed": 2}


def refused_hold_playbook(before: list[dict[str, Any]]) -> str:
    """``before`` steps, then a stop holding capacity, a start, and a rollback that starts
    it: the rollback must not run for a target the stop left untouched."""
    document = yaml.safe_load(one_step("ec2.stop", {"hold_capacity": True},
                                       rollback=[{"id": "put_back", "action": "ec2.start"}]))
    document["steps"] = [*before, *document["steps"], {"id": "start", "action": "ec2.start"}]
    return yaml.safe_dump(document, sort_keys=False)


def untouched_on_both_engines(text: str) -> tuple[tuple[str, str | None], Outcome,
                                                   tuple[Counter[str], Counter[str]]]:
    """(the local status and error, the Step Functions outcome, the calls each made) of
    ``text`` on one target of an AZ with no m5.large left."""
    playbook, params = from_text(text)
    found: list[Counter[str]] = []
    clock = VirtualClock()
    with Sandbox(clock=clock, durations=Durations()) as sb:
        (target,) = ec2_targets(sb.build_fleet(FleetSpec(plain=1, azs=1)).targets)
        sb.set_capacity("m5.large", "us-east-1a", 0)
        local = Executor(playbook, [target],
                         clients=lambda _a, region, service: sb.client(service, region,
                                                                        NO_RETRIES),
                         clock=clock, bus=EventBus(), journal=Journal.memory(),
                         run_id="local-1", params=params).run()
        found.append(Counter(op for (_, op), n in sb.api_call_counts().items()
                             for _ in range(n)))
    clock = VirtualClock()
    with MotoStepFunctions(clock) as engine, Sandbox(clock=clock, durations=Durations()) as sb:
        (remote,) = ec2_targets(sb.build_fleet(FleetSpec(plain=1, azs=1)).targets)
        sb.set_capacity("m5.large", "us-east-1a", 0)
        outcome = run_one_target(sb, engine, playbook, params, remote)
        found.append(Counter(op for (service, op), n in sb.api_call_counts().items()
                             if service == "ec2" for _ in range(n)))
    return ((local.statuses[target.key], local.errors.get(target.key)), outcome,
            (found[0], found[1]))


def test_a_refused_hold_leaves_the_target_untouched_and_refused_on_both_engines() -> None:
    # A backup before the stop is made beside the target: nothing to undo.
    text = refused_hold_playbook([{"id": "backup", "action": "ec2.snapshot_root",
                                   "with": {"wait": False}}])

    (status, error), outcome, (local, remote) = untouched_on_both_engines(text)

    assert status == "refused" and error is not None
    assert error.startswith("step step refused: could not hold capacity for i-")
    assert error.endswith("so it was not stopped and is as it was: run again later, or set "
                          "hold_capacity: false to stop it without a reservation (it may "
                          "then not start again while the AZ has no capacity). AWS said: "
                          "InsufficientInstanceCapacity: We currently do not have sufficient "
                          "m5.large capacity in the Availability Zone you requested "
                          "(us-east-1a). Our system will be working on provisioning "
                          "additional capacity. You can currently get m5.large capacity by "
                          "not specifying an Availability Zone in your request or choosing "
                          "other Availability Zones.")
    assert (outcome.status, outcome.error) == ("FAILED", "remediate.Refused")
    # The same words, up to AWS's (which Step Functions words its own way; the instance
    # ids differ between the two fleets).
    assert outcome.cause.split(" for i-")[0] == error.split(" for i-")[0]
    assert (outcome.cause.split(" (m5.large")[1].split("AWS said: ")[0]
            == error.split(" (m5.large")[1].split("AWS said: ")[0])
    # Neither stopped nor started it: no rollback step ran.
    for calls in (local, remote):
        assert (calls["StopInstances"], calls["StartInstances"],
                calls["CreateSnapshot"]) == (0, 0, 1)


def test_a_refused_hold_after_a_change_to_the_target_is_rolled_back_on_both_engines() -> None:
    text = refused_hold_playbook([{"id": "reboot", "action": "ec2.reboot",
                                   "with": {"times": 1, "verify": False, "timeout": "1m"}}])

    (status, error), outcome, (local, remote) = untouched_on_both_engines(text)

    assert status == "rolled_back"
    assert error is not None and error.startswith(
        "step step failed: could not hold capacity for i-")
    assert (outcome.status, outcome.error) == ("FAILED", "remediate.RolledBack")
    assert outcome.cause.split(" for i-")[0] == error.split(" for i-")[0]
    # The rollback's start found it running: no StartInstances either way.
    for calls in (local, remote):
        assert (calls["RebootInstances"], calls["StopInstances"]) == (1, 0)



def own_settings(sb: Sandbox, fleet: Fleet, clock: VirtualClock) -> dict[str, Any]:
    """The first target never starts in a reservation (preference none); the second
    targets one of its own, made before the run (set as AWS allows: stopped)."""
    ec2 = sb.client("ec2", "us-east-1", NO_RETRIES)
    never, owner = fleet.instance_ids()
    own = ec2.create_capacity_reservation(
        InstanceType="m5.large", InstancePlatform="Windows", AvailabilityZone="us-east-1a",
        InstanceCount=1, InstanceMatchCriteria="targeted")["CapacityReservation"][
        "CapacityReservationId"]
    ec2.stop_instances(InstanceIds=[never, owner])
    clock.advance(sb.durations.instance_stop + 1)
    ec2.modify_instance_capacity_reservation_attributes(
        InstanceId=never, CapacityReservationSpecification={
            "CapacityReservationPreference": "none"})
    ec2.modify_instance_capacity_reservation_attributes(
        InstanceId=owner, CapacityReservationSpecification={
            "CapacityReservationTarget": {"CapacityReservationId": own}})
    ec2.start_instances(InstanceIds=[never, owner])
    clock.advance(sb.durations.instance_start + sb.durations.instance_boot + 1)
    return {}


def test_the_instance_s_own_reservation_settings_decide_the_hold_on_both_engines() -> None:
    found = both_engines(FleetSpec(plain=2, azs=1), held_then_started(), holds,
                         prepare=own_settings)

    # The one with preference none is refused, running; the other starts in its own
    # reservation, which it still uses; no hold is made for either.
    assert found.local == found.stepfunctions == (
        Counter({"running": 2}), Counter({"active": 1}), 1)
    assert found.local_statuses == {"refused": 1, "succeeded": 1}
