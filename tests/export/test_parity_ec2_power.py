"""ec2.stop, ec2.start, ec2.reboot and ec2.verify_status: the same end on both engines.

Each runs as a one-step playbook locally and, exported, on moto's Step Functions, on a
fresh sandbox fleet of the same shape (tests/export/parity_support.py).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import yaml
from parity_support import both_engines, one_step
from sfn_support import FIXED, NO_RETRIES, UNTOUCHED_BROKEN, EndState, end_state

from remediate.clock import VirtualClock
from remediate.sandbox import Fleet, FleetSpec, Sandbox


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
