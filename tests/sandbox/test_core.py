from __future__ import annotations

import pytest
from botocore_support import NO_RETRIES
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


def test_a_fault_for_some_calls_answers_only_those_then_the_real_answer() -> None:
    from botocore.exceptions import ClientError

    with Sandbox(clock=VirtualClock()) as sandbox:
        # botocore's own retries off (as remediate's clients have them), or it would hide
        # the faults.
        sfn = sandbox.client("stepfunctions", config=NO_RETRIES)
        sandbox.fail("ListStateMachines", "ThrottlingException", "Rate exceeded", times=2)
        codes = []
        for _ in range(3):
            try:
                codes.append(str(len(sfn.list_state_machines()["stateMachines"])))
            except ClientError as exc:
                codes.append(exc.response["Error"]["Code"])

        assert codes == ["ThrottlingException", "ThrottlingException", "0"]
        with pytest.raises(ValueError, match="times must be at least 1"):
            sandbox.fail("ListStateMachines", "ThrottlingException", times=0)


def test_s3_clients_in_two_regions_and_sessions_coexist() -> None:
    # Before: every boto3 Session registered boto3's S3 customisations again on the shared
    # botocore session; the second S3 client failed ("Cannot inject class attribute
    # upload_file, attribute already exists in class dict").
    with Sandbox(clock=VirtualClock()) as sandbox:
        sandbox.client("s3").create_bucket(Bucket="items")
        other = sandbox.boto3_session().client("s3")
        west = sandbox.client("s3", "us-west-2")

        assert [b["Name"] for b in other.list_buckets()["Buckets"]] == ["items"]
        assert [b["Name"] for b in west.list_buckets()["Buckets"]] == ["items"]
