"""The shape of exported state machines, and what does not export."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws
from sfn_support import ROLE, builtin, from_text

from remediate.clock import VirtualClock
from remediate.export import NotExportable, compile_playbook, definition_size
from remediate.export.compiler import unsafe_paths
from remediate.export.moto_engine import MotoStepFunctions

REPAIR = {"rescue_image_id": "ami-0123456789abcdef0"}


def machine(name: str, **params: str) -> dict[str, Any]:
    playbook, bound = builtin(name, **params)
    return compile_playbook(playbook, bound)


def states_of(definition: dict[str, Any]) -> dict[str, Any]:
    return definition["States"]["targets"]["ItemProcessor"]["States"]


def test_batches_run_one_after_the_other_each_a_distributed_map_with_the_guards() -> None:
    definition = machine("ec2-offline-repair.yaml", **REPAIR)
    targets = definition["States"]["targets"]

    assert targets["ItemProcessor"]["ProcessorConfig"] == {
        "Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert (targets["MaxConcurrency"], targets["ToleratedFailurePercentage"]) == (1000, 10.0)
    assert targets["ItemsPath"] == "$.batch.items"
    assert targets["Catch"][0]["ErrorEquals"] == ["States.ExceedToleratedFailureThreshold"]
    assert targets["Next"] == "batch done"
    assert definition["States"]["batch done"]["Next"] == "next batch"


def test_steps_are_parallel_states_with_their_retries_and_failure_paths() -> None:
    states = states_of(machine("ec2-offline-repair.yaml", **REPAIR))

    repair = states["repair"]
    assert repair["Type"] == "Parallel" and repair["Next"] == "release"
    assert repair["Retry"] == [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 60,
                                "MaxAttempts": 1, "BackoffRate": 2.0, "MaxDelaySeconds": 300,
                                "JitterStrategy": "FULL"}]
    assert repair["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error",
                                "Next": "repair.failed"}]
    # Failing before anything changed does not roll back; after the first mutation it does.
    assert states["backup.failed"]["Next"] == "rollback"  # ec2.snapshot_root mutates
    assert states["repair.failed"]["Next"] == "rollback"
    assert states["rollback"]["Next"] == "put_back"
    assert states["put_back"]["Catch"][0]["ResultPath"] == "$.rollback_errors.put_back"
    assert states["put_back_settings"]["Next"] == "cleanup"
    assert states["verify"]["Next"] == "cleanup"


def test_calls_are_sdk_tasks_with_jittered_retries() -> None:
    branch = states_of(machine("ec2-offline-repair.yaml", **REPAIR))["stop"]["Branches"][0]
    call = branch["States"]["stop.instance.call"]

    assert call["Resource"] == "arn:aws:states:::aws-sdk:ec2:stopInstances"
    assert call["Parameters"] == {"InstanceIds.$": "States.Array($.target.id)"}
    assert call["Retry"] == [{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 2,
                              "BackoffRate": 2.0, "MaxAttempts": 3, "MaxDelaySeconds": 60,
                              "JitterStrategy": "FULL"}]


def test_waits_are_wait_and_choice_loops_bounded_by_the_timeout() -> None:
    branch = states_of(machine("ec2-reboot-first.yaml"))["verify"]["Branches"][0]["States"]

    assert branch["verify.status.sleep"] == {"Type": "Wait", "Seconds": 15,
                                             "Next": "verify.status.count"}
    checks = branch["verify.status.check"]["Choices"]
    # 5m at a 15s poll interval: 20 polls.
    assert {"Variable": "$.poll.n", "NumericGreaterThanEquals": 20,
            "Next": "verify.not_ok"} in checks


def test_templates_read_the_iteration_state_and_params_are_bound() -> None:
    playbook, params = builtin("ec2-offline-repair.yaml", **REPAIR)
    states = states_of(compile_playbook(playbook, params))

    launch = states["attach"]["Branches"][0]["States"]["attach.launch"]["Parameters"]
    assert (launch["ImageId"], launch["InstanceType"]) == (REPAIR["rescue_image_id"],
                                                          "m5.large")
    expected = states["repair"]["Branches"][0]["States"]["repair.expected"]["Choices"][0]
    assert expected["And"][2] == {"Variable": "$.r.volume_att.a.InstanceId",
                                  "StringEqualsPath": "$.steps.attach.outputs.rescue_instance_id"}


def test_a_resolve_ssm_rescue_image_is_read_in_the_region_before_it_is_judged() -> None:
    playbook, params = builtin("ec2-offline-repair.yaml")  # the default: resolve:ssm:
    attach = states_of(compile_playbook(playbook, params))["attach"]["Branches"][0]
    parameter = "/aws/service/ami-windows-latest/Windows_Server-2022-English-Full-Base"

    resolve = attach["States"]["attach.resolve"]
    assert attach["StartAt"] == "attach.resolve"
    assert (resolve["Resource"], resolve["Parameters"], resolve["Next"]) == (
        "arn:aws:states:::aws-sdk:ssm:getParameter", {"Name": parameter}, "attach.same_ami")
    assert resolve["ResultSelector"] == {"id.$": "$.Parameter.Value"}
    assert resolve["Catch"][0]["Next"] == "attach.resolve.failed"
    assert attach["States"]["attach.resolve.failed"]["Cause"] == (
        f"rescue image resolve:ssm:{parameter} does not resolve: SSM parameter {parameter} "
        "does not exist in this Region, or cannot be read (ssm:GetParameter)")
    same = attach["States"]["attach.same_ami"]["Choices"][0]["And"][2]
    assert same == {"Variable": "$.target.image_id", "StringEqualsPath": "$.r.image_id.id"}
    assert attach["States"]["attach.same_ami.refuse"]["CausePath"] == (
        f"States.Format('rescue_image_id {{}} (resolve:ssm:{parameter}) is the AMI {{}} was "
        "launched from: its disk would collide with the rescue instance disk (disk "
        "signature); use a different Windows version, or --accept same-ami-rescue', "
        "$.r.image_id.id, $.target.id)")
    launch = attach["States"]["attach.launch"]["Parameters"]
    assert launch["ImageId.$"] == "$.r.image_id.id"
    assert attach["States"]["attach.image"]["Parameters"] == {
        "ImageIds.$": "States.Array($.r.image_id.id)"}


WHEN = """
version: 1
name: when-test
targets: {kind: ec2-instance, ids: [i-0123456789abcdef0]}
parameters:
  aggressive: {type: boolean, default: false}
steps:
  - id: reboot
    action: ec2.reboot
  - id: pause
    action: control.pause
    when: {value: params.aggressive, equals: true}
    with: {duration: 1m}
  - id: stop
    action: ec2.stop
    when:
      all:
        - {value: steps.reboot.outputs.healthy, equals: false}
        - {value: target.state, in: [running, pending]}
"""


def test_when_is_a_choice_and_a_params_only_condition_is_decided_at_export() -> None:
    playbook, params = from_text(WHEN)
    states = states_of(compile_playbook(playbook, params))

    assert states["reboot"]["Next"] == "pause.skipped"  # aggressive is false: always skipped
    assert "pause.when" not in states
    assert states["pause.skipped"]["Next"] == "stop.when"
    choice = states["stop.when"]
    assert choice["Default"] == "stop.skipped"
    assert choice["Choices"][0]["Next"] == "stop"
    assert choice["Choices"][0]["And"][0] == {"And": [
        {"Variable": "$.steps.reboot.outputs.healthy", "IsPresent": True},
        {"And": [{"Variable": "$.steps.reboot.outputs.healthy", "IsBoolean": True},
                 {"Variable": "$.steps.reboot.outputs.healthy", "BooleanEquals": False}]}]}


def test_a_step_its_parameters_rule_out_is_only_a_skip_even_if_its_with_needs_one() -> None:
    # Route 3 to the launch state: replace_from_snapshot needs a snapshot_id nobody gave.
    states = states_of(machine("ec2-replace-root-volume.yaml"))

    assert states["replace_from_snapshot.skipped"] == {
        "Type": "Pass", "Result": {"status": "skipped", "outputs": {}},
        "ResultPath": "$.steps.replace_from_snapshot", "Next": "verify"}
    assert "replace_from_snapshot" not in states and "replace" in states


def test_role_arn_makes_every_call_assume_it() -> None:
    playbook, params = builtin("ec2-reboot-first.yaml")
    role = "arn:aws:iam::210987654321:role/remediate-target"
    text = json.dumps(compile_playbook(playbook, params, role_arn=role))

    assert text.count('"Credentials": {"RoleArn": "' + role + '"}') == text.count(
        '"Resource": "arn:aws:states:::aws-sdk:')


def test_no_path_is_read_differently_by_moto_and_aws() -> None:
    for name, params in (("ec2-reboot-first.yaml", {}), ("ec2-offline-repair.yaml", REPAIR)):
        assert list(unsafe_paths(machine(name, **params))) == []
    assert list(unsafe_paths({"x.$": "$.Volumes[0].State"})) == ["$.Volumes[0].State"]


def test_the_definitions_parse_and_their_sizes_are_known() -> None:
    sizes = {}
    with MotoStepFunctions(VirtualClock()), mock_aws():
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        for name, params in (("ec2-reboot-first.yaml", {}),
                             ("ec2-offline-repair.yaml", REPAIR)):
            definition = machine(name, **params)
            sfn.create_state_machine(name=name.split(".")[0], roleArn=ROLE,
                                     definition=json.dumps(definition))
            sizes[name] = definition_size(definition)
    assert sizes["ec2-reboot-first.yaml"].states < sizes["ec2-offline-repair.yaml"].states
    assert sizes["ec2-offline-repair.yaml"].bytes < 1_048_576


RUN_COMMAND = """
version: 1
name: run-command
targets: {kind: ec2-instance, ids: [i-0123456789abcdef0]}
steps:
  - id: fix
    action: ssm.run_command
    with: {commands: [echo fixed]}
"""


def test_an_action_without_a_fragment_does_not_export() -> None:
    playbook, params = from_text(RUN_COMMAND)
    with pytest.raises(NotExportable) as raised:
        compile_playbook(playbook, params)
    assert str(raised.value) == (
        "ssm.run_command cannot be exported to Step Functions: it has no Step Functions "
        "fragment; run this playbook with the local engine")


def test_workspaces_do_not_export() -> None:
    playbook, params = builtin("workspaces-recover.yaml")
    with pytest.raises(NotExportable) as raised:
        compile_playbook(playbook, params)
    assert str(raised.value) == (
        "workspaces-recover cannot be exported to Step Functions: targets of kind workspace "
        "have no Step Functions inspection")


def test_a_fact_iterations_do_not_learn_does_not_export() -> None:
    playbook, params = from_text(WHEN.replace("target.state", "target.kms_key_usable"))
    with pytest.raises(NotExportable) as raised:
        compile_playbook(playbook, params)
    assert str(raised.value) == (
        "step stop when cannot be exported to Step Functions: ${{ target.kms_key_usable }}: "
        "Step Functions iterations learn only the facts id, region, account, state, "
        "availability_zone, instance_type, image_id, root_device_name, root_volume_id, "
        "root_delete_on_termination, root_encrypted")
