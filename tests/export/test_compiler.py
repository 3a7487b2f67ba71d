"""The shape of exported state machines, and what does not export."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import boto3
import pytest
from moto import mock_aws
from sfn_support import ROLE, builtin, from_text, one_step

from remediate.actions.contract import Action, Plan, StepContext
from remediate.actions.requests import ActionRun
from remediate.clock import VirtualClock
from remediate.export import NotExportable, compile_playbook, definition_size, program_asl
from remediate.export.compiler import unsafe_paths
from remediate.export.fragment import AslStep
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
    assert states["verify"]["Next"] == "confirm_backup"
    # A backup that ended in error fails the target (on_failure: abort): no rollback.
    assert states["confirm_backup.failed"]["Next"] == "cleanup"
    assert states["confirm_backup"]["Next"] == "cleanup"


def test_calls_are_sdk_tasks_with_jittered_retries() -> None:
    branch = states_of(machine("ec2-offline-repair.yaml", **REPAIR))["stop"]["Branches"][0]
    # One per way in (from running, from pending once it runs).
    calls = [s for s in branch["States"].values()
             if s.get("Resource") == "arn:aws:states:::aws-sdk:ec2:stopInstances"
             and "Force" not in s["Parameters"]]

    assert len(calls) == 2
    call = calls[0]
    # The shipped playbook skips the crash-looping guest's OS shutdown.
    assert call["Parameters"] == {"InstanceIds.$": "States.Array($.target.id)",
                                  "SkipOsShutdown": True}
    assert call["Retry"] == [{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 2,
                              "BackoffRate": 2.0, "MaxAttempts": 3, "MaxDelaySeconds": 60,
                              "JitterStrategy": "FULL"}]


def test_waits_are_wait_and_choice_loops_bounded_by_the_timeout() -> None:
    branch = states_of(machine("ec2-reboot-first.yaml"))["verify"]["Branches"][0]["States"]

    # The status poll is the program's first step (verify.p.0): it reads, checks, sleeps
    # the poll interval and counts, until the timeout's polls are spent.
    assert branch["verify.p.0.sleep"] == {"Type": "Wait", "Seconds": 15,
                                          "Next": "verify.p.0.count"}
    checks = branch["verify.p.0.check"]["Choices"]
    # 5m at a 15s poll interval: 20 polls, then the step fails naming the checks.
    [late] = [c for c in checks if c.get("NumericGreaterThanEquals") == 20]
    assert late["Variable"] == "$.r.status_polls.n"
    assert branch[late["Next"]]["Type"] == "Choice"  # describing the impaired checks


def tasks(branch: dict[str, Any], operation: str) -> list[dict[str, Any]]:
    """The SDK tasks calling ``operation`` (``ec2:runInstances``) in a step's branch (state
    names follow the program's shape, see remediate.export.program_asl)."""
    return [state for state in branch["States"].values()
            if state.get("Resource") == f"arn:aws:states:::aws-sdk:{operation}"]


def test_templates_read_the_iteration_state_and_params_are_bound() -> None:
    playbook, params = builtin("ec2-offline-repair.yaml", **REPAIR)
    states = states_of(compile_playbook(playbook, params))

    [launch] = tasks(states["attach"]["Branches"][0], "ec2:runInstances")
    assert (launch["Parameters"]["ImageId"], launch["Parameters"]["InstanceType"]) == (
        REPAIR["rescue_image_id"], "m5.large")
    [expected] = [choice for state in states["repair"]["Branches"][0]["States"].values()
                  for choice in state.get("Choices", [])
                  if "$.steps.attach.outputs.rescue_instance_id" in json.dumps(choice)]
    assert expected["Not"]["And"][2] == {
        "Variable": "$.r.holder.v.instance_id",
        "StringEqualsPath": "$.steps.attach.outputs.rescue_instance_id"}


def test_a_resolve_ssm_rescue_image_is_read_in_the_region_before_it_is_judged() -> None:
    playbook, params = builtin("ec2-offline-repair.yaml")  # the default: resolve:ssm:
    attach = states_of(compile_playbook(playbook, params))["attach"]["Branches"][0]
    parameter = "/aws/service/ami-windows-latest/Windows_Server-2022-English-Full-Base"

    [resolve] = tasks(attach, "ssm:getParameter")
    assert (resolve["Parameters"], resolve["ResultSelector"]) == (
        {"Name": parameter}, {"id.$": "$.Parameter.Value"})
    # The first thing the program does (after its bookkeeping), then the same-AMI guard.
    first = attach["States"][attach["StartAt"]]
    while first.get("Type") == "Pass":
        first = attach["States"][first["Next"]]
    assert first is resolve
    guard = attach["States"][resolve["Next"]]
    assert guard["Choices"][0]["And"][2] == {"Variable": "$.target.image_id",
                                             "StringEqualsPath": "$.r.image.id"}
    refused = attach["States"][guard["Choices"][0]["Next"]]
    assert refused["CausePath"] == (
        f"States.Format('rescue_image_id {{}} (resolve:ssm:{parameter}) is the AMI {{}} was "
        "launched from: its disk would collide with the rescue instance{}s (disk signature) "
        "and onlining it can leave it unbootable; use a different Windows version, or "
        "--accept same-ami-rescue', $.r.image.id, $.target.id, $.r.lit.t0)")
    assert attach["States"]["attach.p.text"]["Result"] == {"t0": "'"}
    [launch] = tasks(attach, "ec2:runInstances")
    assert launch["Parameters"]["ImageId.$"] == "$.r.image.id"
    [image] = tasks(attach, "ec2:describeImages")
    assert image["Parameters"] == {"Filters": [
        {"Name": "image-id", "Values.$": "States.Array($.r.image.id)"}]}


def test_same_ami_accepted_leaves_no_guard() -> None:
    playbook, params = builtin("ec2-offline-repair.yaml", **REPAIR)
    guarded = json.dumps(compile_playbook(playbook, params))
    accepted = json.dumps(compile_playbook(playbook, params,
                                           accepted=frozenset({"same-ami-rescue"})))

    refusal = "would collide with the rescue instance"
    assert refusal in guarded
    assert refusal not in accepted


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
    with: {commands: [echo fixed], parameters: {Host: HOST}}
"""


def test_run_command_exports_with_its_values_quoted_at_export() -> None:
    playbook, params = from_text(RUN_COMMAND.replace("HOST", "it's me"))
    branch = states_of(compile_playbook(playbook, params))["fix"]["Branches"][0]

    [commands] = [state for state in branch["States"].values()
                  if state.get("ResultPath") == "$.r.commands"]
    assert commands["Parameters"] == {"v": ["$Host = 'it''s me'", "echo fixed"]}
    [send] = tasks(branch, "ssm:sendCommand")
    assert send["Parameters"]["Parameters"] == {"commands.$": "$.r.commands.v",
                                                "executionTimeout": ["600"]}


def test_a_value_only_known_at_run_time_does_not_export_into_a_script() -> None:
    playbook, params = from_text(RUN_COMMAND.replace("HOST", '"${{ target.id }}"'))
    with pytest.raises(NotExportable) as raised:
        compile_playbook(playbook, params)
    assert str(raised.value) == (
        "ssm.run_command cannot be exported to Step Functions: the script's variable Host is "
        "only known at run time, and Step Functions cannot quote a value for a shell: give "
        "it a literal value")


def test_an_action_without_a_fragment_does_not_export() -> None:
    class Unported(Action):
        name = "test.unported"
        summary = "an action written for the local engine only"

        def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
            return Plan()

        def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
            return {}
            yield  # pragma: no cover

    with pytest.raises(NotExportable) as raised:
        program_asl.fragment(Unported(), AslStep("fix", "test.unported"))
    assert str(raised.value) == (
        "test.unported cannot be exported to Step Functions: it has no Step Functions "
        "fragment; run this playbook with the local engine")


WORKSPACE_DATA_LOSS = frozenset({"workspace-restore-data-loss", "workspace-rebuild-data-loss"})


def test_workspaces_export_each_destructive_step_only_with_its_accept() -> None:
    playbook, params = builtin("workspaces-recover.yaml")

    accepted = states_of(compile_playbook(playbook, params, accepted=WORKSPACE_DATA_LOSS))
    refused = states_of(compile_playbook(playbook, params,
                                         accepted=frozenset({"workspace-restore-data-loss"})))

    assert [accepted[s]["Type"] for s in ("start", "reboot", "restore", "rebuild", "verify")] == [
        "Parallel"] * 5
    # Without --accept workspace-rebuild-data-loss, a WorkSpace the restore did not heal
    # stops before the rebuild, refused, as the local engine stops it there.
    assert refused["rebuild.when"]["Choices"][0]["Next"] == "rebuild"
    assert refused["rebuild"] == {
        "Type": "Pass", "ResultPath": "$.refused", "Next": "cleanup", "Result": {
            "step": "rebuild",
            "Cause": "stopped before step rebuild: workspace-rebuild-data-loss not accepted "
                     "(--accept workspace-rebuild-data-loss): rebuilding a WorkSpace recreates "
                     "the root volume from the bundle image and the user volume from its last "
                     "snapshot"}}
    assert refused["stopped"] == {"Type": "Fail", "Error": "remediate.Refused",
                                  "CausePath": "$.refused.Cause"}
    assert "rebuild.when" in accepted and accepted["rebuild"]["Type"] == "Parallel"


def test_a_workspace_fact_iterations_do_not_learn_does_not_export() -> None:
    playbook, params = one_step("workspace", "{id: reboot, action: workspaces.reboot, when: "
                                             "{value: target.tags.owner, equals: me}}")
    with pytest.raises(NotExportable) as raised:
        compile_playbook(playbook, params)
    assert str(raised.value) == (
        "step reboot when cannot be exported to Step Functions: ${{ target.tags.owner }}: "
        "Step Functions iterations learn only the facts id, region, account, state, "
        "directory_id, bundle_id, user_name, computer_name, running_mode")


def test_the_retries_of_a_step_that_destroys_data_do_not_export() -> None:
    """A retry on Step Functions runs the step afresh, not knowing its restore went: the
    restore would go again (locally the journal says it may have gone: never twice)."""
    playbook, params = one_step("workspace", "{id: restore, action: workspaces.restore, "
                                             "with: {require_healthy: true}, "
                                             "retries: {attempts: 2}}")
    with pytest.raises(NotExportable) as raised:
        compile_playbook(playbook, params, accepted=WORKSPACE_DATA_LOSS)
    assert str(raised.value) == (
        "step restore (workspaces.restore) cannot be exported to Step Functions: retries do "
        "not export for a step that destroys data: a retry on Step Functions cannot know its "
        "request was sent; remove the step's retries")


@pytest.mark.parametrize("step_id", ["targets", "outcome", "failed", "cleanup_rescue"])
def test_a_step_named_like_a_state_of_the_machine_does_not_export(step_id: str) -> None:
    playbook, params = one_step("ec2-instance", f"{{id: {step_id}, action: ec2.reboot}}")
    with pytest.raises(NotExportable) as raised:
        compile_playbook(playbook, params)
    assert str(raised.value) == (
        f"step {step_id} cannot be exported to Step Functions: its id names one of the state "
        "machine's own states: give the step another id")


def test_the_machines_own_states_are_named_so_that_no_step_can_take_their_names() -> None:
    """A step's states are named after its id, an identifier: "start" is the WorkSpaces
    route's first step (the machine's first state was once called "start" too)."""
    definition = machine("workspaces-recover.yaml")

    assert definition["StartAt"] == "set up batches"
    assert [name for name in definition["States"] if name.isidentifier()] == ["targets"]
    assert "start" in states_of(definition)


def test_a_fact_iterations_do_not_learn_does_not_export() -> None:
    # The rescue image facts are the pre-flight's (judged before an execution starts).
    playbook, params = from_text(WHEN.replace("target.state", "target.rescue_image_state"))
    with pytest.raises(NotExportable) as raised:
        compile_playbook(playbook, params)
    assert str(raised.value) == (
        "step stop when cannot be exported to Step Functions: "
        "${{ target.rescue_image_state }}: Step Functions iterations learn only the facts "
        "id, region, account, state, tags, availability_zone, instance_type, platform, "
        "image_id, root_device_name, root_volume_id, root_delete_on_termination, "
        "root_encrypted, kms_key_id, kms_key_usable, lifecycle, spot_request_type, "
        "product_codes, hibernation, stop_protection, instance_store, public_ip, "
        "has_elastic_ip, status")


def test_a_fact_of_the_whole_inspection_exports() -> None:
    playbook, params = from_text(WHEN.replace("{value: target.state, in: [running, pending]}",
                                              "{value: target.kms_key_usable, equals: true}"))
    states = states_of(compile_playbook(playbook, params))

    assert states["stop.when"]["Choices"][0]["And"][1]["And"][0] == {
        "Variable": "$.target.kms_key_usable", "IsPresent": True}


def capacity_calls(definition: Mapping[str, Any]) -> set[str]:
    """The capacity reservation operations a definition's Task states call."""
    text = json.dumps(definition)
    return {op for op in ("describeCapacityReservations", "cancelCapacityReservation",
                          "createCapacityReservation", "modifyCapacityReservation")
            if f"aws-sdk:ec2:{op}" in text}


@pytest.mark.parametrize(("hold", "expected"), [
    ("false", set()),
    ("true", {"describeCapacityReservations", "cancelCapacityReservation",
              "createCapacityReservation"}),
    # Known only at run time: the cleanup stays, the hold is decided as the step runs.
    ('"${{ steps.first.outputs.previous_state }}"',
     {"describeCapacityReservations", "cancelCapacityReservation",
      "createCapacityReservation"}),
])
def test_the_iteration_releases_holds_only_when_the_stop_may_hold_capacity(
        hold: str, expected: set[str]) -> None:
    playbook, params = from_text(f"""
version: 1
name: holds
targets: {{kind: ec2-instance, tags: {{incident: crowdstrike-2024-07-19}}}}
steps:
  - {{id: first, action: ec2.stop, with: {{hold_capacity: false}}}}
  - {{id: stop, action: ec2.stop, with: {{hold_capacity: {hold}}}}}
""")

    definition = compile_playbook(playbook, params)

    assert capacity_calls(definition) == expected
    iteration = definition["States"]["targets"]["ItemProcessor"]["States"]
    assert (iteration["cleanup"]["Type"] == "Parallel") == bool(expected)


def test_a_playbook_parameter_turning_holds_off_drops_the_cleanup() -> None:
    text = """
version: 1
name: holds
targets: {kind: ec2-instance, tags: {incident: crowdstrike-2024-07-19}}
parameters:
  hold: {type: boolean, default: true}
steps:
  - {id: stop, action: ec2.stop, with: {hold_capacity: "${{ params.hold }}"}}
"""
    off, on = from_text(text, hold="false"), from_text(text)

    assert capacity_calls(compile_playbook(*off)) == set()
    assert "describeCapacityReservations" in capacity_calls(compile_playbook(*on))


def test_a_rollback_start_reads_whether_a_start_was_just_refused_for_capacity() -> None:
    # On moto the capacity refusal cannot be told from another EC2 error (its cause lacks
    # the code), so this is checked on the definition: the rollback's start is guarded by
    # the failed step's error, which the forward start's refusal names.
    playbook, params = from_text("""
version: 1
name: restart
targets: {kind: ec2-instance, tags: {incident: crowdstrike-2024-07-19}}
steps:
  - {id: start, action: ec2.start}
rollback:
  - {id: put_back, action: ec2.start}
""")

    states = definition_states(compile_playbook(playbook, params))

    refused = [name for name, state in states.items() if state.get("Type") == "Fail"
               and state.get("Error") == "remediate.NoCapacity"]
    assert refused and all(name.startswith(("start.", "put_back.")) for name in refused)
    guards = [name for name, state in states.items() if state.get("Type") == "Choice"
              and '"$.error.Error"' in json.dumps(state)
              and "remediate.NoCapacity" in json.dumps(state)]
    assert guards and all(name.startswith(("start.", "put_back.")) for name in guards)
    # Taken, it fails the rollback step at once, before any StartInstances.
    for name in guards:
        [choice] = states[name]["Choices"]
        fail = states[choice["Next"]]
        assert fail["Type"] == "Fail"
        assert fail["CausePath"] == (
            "States.Format('{} not started again: no capacity, as above', $.target.id)")


def definition_states(definition: Mapping[str, Any]) -> dict[str, Any]:
    """Every state of a definition, in its branches and item processors too."""
    found: dict[str, Any] = {}

    def walk(states: Mapping[str, Any]) -> None:
        for name, state in states.items():
            found[name] = state
            for branch in state.get("Branches", []):
                walk(branch["States"])
            if "ItemProcessor" in state:
                walk(state["ItemProcessor"]["States"])

    walk(definition["States"])
    return found
