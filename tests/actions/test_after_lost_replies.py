"""After a lost reply, at the level of one action.

An error that the step's own lost call explains: AttachVolume answers ``VolumeInUse``
(the lost attach did happen) or DetachVolume ``IncorrectState`` (it is detaching) while
AWS's Describe calls still lag behind. After a lost reply that is a state to reconcile
(OutcomeUnknown: the step runs again, reading AWS), never a failure; without one, it
fails the step as before. And the SSM command a lost SendCommand started is told apart
from the step's earlier ones, whose answers came."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from ec2_harness import Ec2Env
from remediate.actions.contract import StepContext, Target
from remediate.actions.registry import get
from remediate.actions.requests import AwsError, Call, OutcomeUnknown, StepFailed
from remediate.actions.ssm import command_comment
from remediate.executor.driver import SyncRuntime
from remediate.language.problems import Problems
from remediate.sandbox import Durations, FleetSpec
from sandbox_actions import REGION, Env, build, ec2_target, launch_instance, sandbox_env


class Answering(SyncRuntime):
    """AWS answers ``error`` to every ``error.operation`` call, without acting."""

    def __init__(self, env: Ec2Env, error: AwsError) -> None:
        super().__init__(env.runtime.clients, env.clock)
        self.error = error

    def call(self, call: Call, region: str) -> Mapping[str, Any]:
        if call.operation == self.error.operation:
            raise self.error
        return super().call(call, region)


def run(env: Ec2Env, action: str, target: Target, facts: dict[str, Any], error: AwsError,
        reply_lost: bool) -> Mapping[str, Any]:
    """``action`` on ``target`` with AWS answering ``error``; ``reply_lost``: the journal
    holds a call of that operation by this step whose reply never came."""
    found = get(action)
    assert found is not None
    runtime = Answering(env, error)
    ctx = StepContext("run-1", target, facts, runtime, step_id="step",
                      sent_before=lambda _operation: reply_lost,
                      unanswered_before=lambda operation: reply_lost
                      and operation == error.operation)
    params = found.params.check({}, ("with",), Problems())
    return runtime.drive(found.run(ctx, params), target.region)


def stopped(env: Ec2Env) -> tuple[Target, dict[str, Any]]:
    target = env.target()
    facts = env.facts(target)
    env.run("ec2.stop", target)
    return target, facts


IN_USE = AwsError("VolumeInUse", "vol-1 is already attached to an instance", "AttachVolume")
DETACHING = AwsError("IncorrectState", "Volume 'vol-1' is in the 'detaching' state.",
                     "DetachVolume")


@pytest.mark.parametrize("reply_lost", [True, False])
def test_reattach_root_meeting_volume_in_use(ec2_env: Ec2Env, reply_lost: bool) -> None:
    target, facts = stopped(ec2_env)
    ec2_env.run("ec2.detach_root", target, facts=facts)

    with pytest.raises(OutcomeUnknown if reply_lost else StepFailed) as excinfo:
        run(ec2_env, "ec2.reattach_root", target, facts, IN_USE, reply_lost)

    if reply_lost:
        assert str(excinfo.value) == ("AttachVolume outcome unknown (VolumeInUse: vol-1 is "
                                      "already attached to an instance)")
    else:
        assert str(excinfo.value) == (f"AttachVolume for {facts['root_volume_id']} failed: "
                                      "VolumeInUse: vol-1 is already attached to an instance")


@pytest.mark.parametrize("reply_lost", [True, False])
def test_detach_root_meeting_incorrect_state(ec2_env: Ec2Env, reply_lost: bool) -> None:
    target, facts = stopped(ec2_env)

    with pytest.raises(OutcomeUnknown if reply_lost else StepFailed) as excinfo:
        run(ec2_env, "ec2.detach_root", target, facts, DETACHING, reply_lost)

    said = "IncorrectState: Volume 'vol-1' is in the 'detaching' state."
    assert str(excinfo.value) == (
        f"DetachVolume outcome unknown ({said})" if reply_lost
        else f"DetachVolume for {facts['root_volume_id']} failed: {said}")


def test_a_lost_send_command_is_not_taken_for_an_earlier_attempts_command() -> None:
    # Attempt 1 sent a command (its answer journaled); attempt 2's SendCommand lost its
    # reply, and listings show its command only 30 s later. Looking, the step sees only
    # attempt 1's command: it is known, so the step looks again until its own shows.
    # Before: it adopted attempt 1's command as its own.
    with sandbox_env(Durations(listing_lag=30.0)) as env:
        instance_id = launch_instance(env, *_windows(env))
        ssm = env.client("ssm")
        comment = command_comment("sync-run", "step")

        def send() -> dict[str, Any]:
            return dict(ssm.send_command(
                InstanceIds=[instance_id], DocumentName="AWS-RunPowerShellScript",
                Comment=comment, Parameters={"commands": ["echo hi"]}))

        earlier = send()
        env.clock.advance(60)  # ended, and listed
        lost = send()["Command"]["CommandId"]
        ctx = replace(env.context(ec2_target(instance_id)), continuing=True,
                      unanswered_before=lambda _operation: True,
                      answered_before=lambda _operation: [earlier])

        out = env.run("ssm.run_command", ctx, {"commands": ["echo hi"]})

        assert out["command_id"] == lost
        assert [c.operation for c in env.runtime.calls].count("SendCommand") == 0


def _windows(env: Env) -> tuple[str, str]:
    setup = build(env, FleetSpec(plain=1, azs=1)).regions[REGION]
    return setup.rescue_windows_ami, next(iter(setup.subnets.values()))
