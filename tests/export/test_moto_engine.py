"""moto executing state machines on the run's clock, and its differences from AWS."""

from __future__ import annotations

import json
from typing import Any

import boto3
from moto import mock_aws
from moto.core.config import default_user_config

from remediate.clock import VirtualClock
from remediate.export import asl
from remediate.export.moto_engine import MotoStepFunctions

ROLE = "arn:aws:iam::123456789012:role/sfn"


def execute(engine: MotoStepFunctions, definition: dict[str, Any]) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    machine = sfn.create_state_machine(name="m", definition=json.dumps(definition),
                                       roleArn=ROLE)["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine, name="e", input="{}")["executionArn"]
    assert engine.join(timeout=60)
    result: dict[str, Any] = sfn.describe_execution(executionArn=arn)
    return result


def test_wait_states_and_retry_intervals_pass_on_the_clock_not_for_real() -> None:
    clock = VirtualClock()
    definition = {"StartAt": "nap", "States": {
        "nap": asl.wait(3600, "read"),
        "read": {**asl.task("ec2", "DescribeVolumes", {"VolumeIds": ["vol-0000000000000000f"]},
                            None),
                 "Retry": [{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 100,
                            "MaxAttempts": 2, "BackoffRate": 2.0, "JitterStrategy": "NONE"}],
                 "Catch": [{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.error",
                            "Next": "done"}]},
        "done": asl.pass_state(None)}}

    with MotoStepFunctions(clock) as engine, mock_aws():
        found = execute(engine, definition)

    assert found["status"] == "SUCCEEDED"
    assert clock.now() == 3600 + 100 + 200
    # moto names every EC2 error ec2.ec2Exception (AWS: Ec2.Ec2Exception): the exported
    # definitions match only States.TaskFailed / States.ALL.
    assert json.loads(found["output"])["error"]["Error"] == "ec2.ec2Exception"


def test_leaving_restores_moto() -> None:
    with MotoStepFunctions(VirtualClock()):
        assert default_user_config["stepfunctions"]["execute_state_machine"] is True
    assert default_user_config["stepfunctions"]["execute_state_machine"] is False
