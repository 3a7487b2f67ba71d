"""The real volume-swap playbook across a fleet: throttled, partly failing, rolled back."""

from __future__ import annotations

from typing import Any

from executor_support import (
    REGION,
    events_of,
    fixed,
    rescue_instances,
    root_in_place,
    step,
    swap_playbook,
)

from remediate.actions.contract import Target
from remediate.clock import VirtualClock
from remediate.executor.engine import Executor
from remediate.executor.events import ApiRetrying, Event, EventBus
from remediate.journal import Journal
from remediate.language.model import Condition
from remediate.sandbox import FleetSpec, Sandbox, ThrottlePolicy


def test_throttling_on_a_third_of_calls_and_every_target_is_still_fixed(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event]) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=30, azs=2))
    sandbox.set_throttle(ThrottlePolicy.random_errors(1 / 3, seed=11))
    pb = swap_playbook(fleet.regions[REGION].rescue_windows_ami)
    targets = [Target("ec2-instance", t.instance_id, t.region) for t in fleet.targets]

    result = Executor(pb, targets, clients=clients, clock=clock, bus=bus,
                      journal=Journal.memory(), run_id="swap-1", workers=4).run()

    calls = sandbox.api_calls
    sandbox.set_throttle(None)
    assert result.ok, result.errors
    assert result.summary == {"succeeded": 30}
    assert all(fixed(sandbox, t) for t in fleet.targets)
    assert rescue_instances(sandbox) == []
    throttled = sum(c.throttled for c in calls)
    assert 0.25 < throttled / len(calls) < 0.42
    # Each throttled answer is retried and said so, but an answer nobody waits for any
    # more (its caller interrupted meanwhile) is dropped: once in a few thousand runs
    # on CI (357 of 358), never reproduced on demand.
    retried = len(events_of(events, ApiRetrying))
    assert throttled - throttled // 100 <= retried <= throttled


def test_a_step_failing_with_the_root_volume_off_its_instance_is_rolled_back(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=8, azs=2))
    doomed = [t.instance_id for t in fleet.targets[:3]]
    sabotage = step("sabotage", "control.fail", {"message": "repair refused for this one"},
                    when=Condition("in", "target.id", doomed))
    pb = swap_playbook(fleet.regions[REGION].rescue_windows_ami, sabotage)
    targets = [Target("ec2-instance", t.instance_id, t.region) for t in fleet.targets]
    journal = Journal.memory()

    result = Executor(pb, targets, clients=clients, clock=clock, bus=bus, journal=journal,
                      run_id="swap-2", workers=4).run()

    assert result.summary == {"rolled_back": 3, "succeeded": 5}
    for target in fleet.targets:
        if target.instance_id in doomed:
            key = f"default/{REGION}/{target.instance_id}"
            assert result.errors[key] == "step sabotage failed: repair refused for this one"
            assert root_in_place(sandbox, target)
            assert sandbox.channel_file_present(target.root_volume_id)
            steps = journal.targets("swap-2")[key].steps
            assert [(s.step_id, s.status) for s in steps if s.rollback] == [
                ("rb_unrescue", "succeeded"), ("rb_reattach", "succeeded"),
                ("rb_restore", "succeeded")]
        else:
            assert fixed(sandbox, target)
    assert rescue_instances(sandbox) == [] and result.cleanup_errors == ()


def test_a_rescue_image_no_action_takes_refuses_targets_without_an_internal_error(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus) -> None:
    """The README's placeholder ``ami-0abc...`` got past the command line into inspection,
    whose params the schema refused; the action then read the refusal as its params."""
    fleet = sandbox.build_fleet(FleetSpec(plain=2, azs=1))
    targets = [Target("ec2-instance", t.instance_id, t.region) for t in fleet.targets]

    result = Executor(swap_playbook("ami-0abc..."), targets, clients=clients, clock=clock,
                      bus=bus, journal=Journal.memory(), run_id="swap-bad-image").run()

    assert result.summary == {"refused": 2}
    assert set(result.errors.values()) == {
        "inspection failed: cannot inspect: inspect.rescue_image_id: expected an AMI id "
        "(ami-...) or resolve:ssm:PARAMETER, found 'ami-0abc...' (a string)"}
    assert [c for c in sandbox.api_calls if c.mutating] == []
