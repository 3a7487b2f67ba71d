from __future__ import annotations

import pytest
from moto.core.responses import BaseResponse
from moto.ec2.models.instances import Instance, InstanceBackend

from remediate.clock import VirtualClock
from remediate.sandbox import Durations, FleetSpec, Sandbox


def test_exit_restores_moto() -> None:
    before = (
        BaseResponse.call_action,
        InstanceBackend.stop_instances,
        Instance.__dict__["instance_status"],
    )
    with Sandbox(clock=VirtualClock()):
        assert BaseResponse.call_action is not before[0]
    after = (
        BaseResponse.call_action,
        InstanceBackend.stop_instances,
        Instance.__dict__["instance_status"],
    )
    assert after == before


def test_exit_removes_the_step_functions_operations_moto_lacks() -> None:
    from moto.stepfunctions.responses import StepFunctionResponse

    describe = StepFunctionResponse.describe_execution
    with Sandbox(clock=VirtualClock()):
        assert hasattr(StepFunctionResponse, "redrive_execution")
        assert StepFunctionResponse.describe_execution is not describe
    assert not hasattr(StepFunctionResponse, "redrive_execution")
    assert StepFunctionResponse.describe_execution is describe


def test_only_one_sandbox_at_a_time() -> None:
    with Sandbox(clock=VirtualClock()), pytest.raises(RuntimeError):
        Sandbox(clock=VirtualClock()).start()


def test_next_deadline_drives_a_virtual_clock() -> None:
    clock = VirtualClock()
    with Sandbox(clock=clock, durations=Durations()) as sandbox:
        fleet = sandbox.build_fleet(FleetSpec(plain=1, azs=1))
        ec2 = sandbox.client("ec2")
        assert sandbox.next_deadline() is None
        ec2.stop_instances(InstanceIds=fleet.instance_ids())
        deadline = sandbox.next_deadline()
        assert deadline == clock.now() + 90
        clock.sleep_until(deadline)
        state = ec2.describe_instances(InstanceIds=fleet.instance_ids())
        assert state["Reservations"][0]["Instances"][0]["State"]["Name"] == "stopped"


def test_instant_durations() -> None:
    clock = VirtualClock()
    with Sandbox(clock=clock, durations=Durations.instant()) as sandbox:
        fleet = sandbox.build_fleet(FleetSpec(plain=1, azs=1))
        ec2 = sandbox.client("ec2")
        ec2.stop_instances(InstanceIds=fleet.instance_ids())
        clock.advance(0.001)
        state = ec2.describe_instances(InstanceIds=fleet.instance_ids())
        assert state["Reservations"][0]["Instances"][0]["State"]["Name"] == "stopped"
