"""control.pause and control.fail: the same end on both engines.

Neither calls AWS: what is compared is which targets each lets through, and that the
steps after them still do what they do (tests/export/parity_support.py).
"""

from __future__ import annotations

from collections import Counter

import yaml
from parity_support import both_engines
from sfn_support import UNTOUCHED_BROKEN, EndState, end_state, from_text, run_one_target

from remediate.actions.contract import Target
from remediate.export.moto_engine import MotoStepFunctions
from remediate.sandbox import Fleet, FleetSpec, Sandbox


def states(sb: Sandbox, fleet: Fleet) -> Counter[tuple[str, EndState]]:
    return Counter((t.kind, end_state(sb, t)) for t in fleet.targets)


def playbook(*steps: dict[str, object]) -> str:
    return yaml.safe_dump({
        "version": 1, "name": "control",
        "targets": {"kind": "ec2-instance", "tags": {"incident": "crowdstrike-2024-07-19"}},
        "steps": list(steps),
        "guards": {"batches": ["100%"], "max_failure_percent": 100,
                   "pause_after_canary": False, "skip_healthy": False}}, sort_keys=False)


GIVE_UP = playbook(
    {"id": "reboot", "action": "ec2.reboot", "with": {"times": 3}},
    {"id": "wait", "action": "control.pause", "with": {"duration": "90s", "reason": "sensor"}},
    {"id": "give_up", "action": "control.fail",
     "when": {"value": "steps.reboot.outputs.healthy", "equals": False},
     "with": {"message": "${{ target.id }} still broken after "
                         "${{ steps.reboot.outputs.reboots }} reboot"}},
    {"id": "stop", "action": "ec2.stop"})


def test_fail_stops_the_targets_its_condition_picks_and_pause_lets_all_through() -> None:
    found = both_engines(FleetSpec(plain=1, reboot_fixable=2, azs=1), GIVE_UP, states)

    # The fixed ones went on to the stop; the one still broken failed before it.
    assert found.local == found.stepfunctions == Counter({
        ("reboot_fixable", EndState("stopped", True, False, False)): 2,
        ("plain", UNTOUCHED_BROKEN): 1})
    assert found.local_statuses == found.sfn_statuses == {"succeeded": 2, "failed": 1}


def test_fail_says_its_message_and_a_zero_pause_waits_for_nothing(
        sfn_sandbox: Sandbox, sfn_engine: MotoStepFunctions) -> None:
    fleet = sfn_sandbox.build_fleet(FleetSpec(plain=1, azs=1))
    text = playbook({"id": "wait", "action": "control.pause", "with": {"duration": "0s"}},
                    {"id": "give_up", "action": "control.fail",
                     "with": {"message": "${{ target.id }} waited ${{ steps.wait.outputs."
                                         "waited }}s"}})
    target = Target("ec2-instance", fleet.targets[0].instance_id, "us-east-1")
    started = sfn_engine.clock.now()

    outcome = run_one_target(sfn_sandbox, sfn_engine, *from_text(text), target)

    assert (outcome.status, outcome.error, outcome.cause) == (
        "FAILED", "remediate.Failed", f"step give_up failed: {target.id} waited 0.0s")
    assert sfn_engine.clock.now() == started
