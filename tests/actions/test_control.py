"""control.pause and control.fail: no AWS, only the clock and the step's outcome."""

from __future__ import annotations

from typing import Any

import pytest

from remediate.actions.contract import StepContext, Target
from remediate.actions.control import Fail, Pause
from remediate.actions.requests import StepFailed
from remediate.clock import VirtualClock
from remediate.executor.driver import SyncRuntime, run_action

TARGET = Target("ec2-instance", "i-0123456789abcdef0", "us-east-1")


def no_aws(service: str, region: str) -> Any:
    raise AssertionError(f"control actions call no AWS API ({service} in {region})")


@pytest.fixture
def runtime() -> SyncRuntime:
    return SyncRuntime(no_aws, VirtualClock())


def test_pause_waits_on_the_clock(runtime: SyncRuntime) -> None:
    assert run_action("control.pause", TARGET, {"duration": "5m", "reason": "let the sensor "
                      "fetch the fixed file"}, runtime) == {"waited": 300.0}
    assert runtime.clock.now() == 300.0
    assert runtime.calls == []


def test_pause_plan_says_how_long_and_why(runtime: SyncRuntime) -> None:
    ctx = StepContext("run", TARGET, {}, runtime)
    assert Pause().plan(ctx, {"duration": 90.0, "reason": "sensor update"}).note == (
        "wait 1m30s (sensor update)")
    assert Pause().plan(ctx, {"duration": 90.0, "reason": ""}).note == "wait 1m30s"


def test_pause_refuses_a_bad_duration(runtime: SyncRuntime) -> None:
    with pytest.raises(ValueError, match="expected a duration from 0s to 24h"):
        run_action("control.pause", TARGET, {"duration": "2d"}, runtime)


def test_fail_fails_the_target_with_the_message(runtime: SyncRuntime) -> None:
    with pytest.raises(StepFailed) as failed:
        run_action("control.fail", TARGET, {"message": "still impaired after 3 reboots"},
                   runtime)
    assert str(failed.value) == "still impaired after 3 reboots"
    ctx = StepContext("run", TARGET, {}, runtime)
    assert Fail().plan(ctx, {"message": "x"}).note == "fail the target: x"


def test_control_actions_apply_to_every_kind() -> None:
    assert Pause.kinds == Fail.kinds == frozenset({"ec2-instance", "workspace"})
    assert not Pause.mutating and not Fail.mutating
