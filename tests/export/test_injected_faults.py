"""Faults the sandbox injects (``Sandbox.fail``) on a JSON-protocol service reach an exported
state machine as errors it can catch, like AWS's (they carry a request id)."""

from __future__ import annotations

from sfn_support import builtin, ec2_targets, end_state, rescue_instances, run_one_target

from remediate.export.moto_engine import MotoStepFunctions
from remediate.sandbox import FleetSpec, Sandbox


def test_a_denied_ssm_command_fails_the_repair_and_rolls_the_target_back(
        sfn_sandbox: Sandbox, sfn_engine: MotoStepFunctions) -> None:
    fleet = sfn_sandbox.build_fleet(FleetSpec(plain=1))
    playbook, params = builtin("ec2-offline-repair.yaml", rescue_image_id="ami-00000000")
    params["rescue_image_id"] = fleet.regions["us-east-1"].rescue_windows_ami
    sfn_sandbox.fail("SendCommand", "AccessDeniedException", "not allowed")

    outcome = run_one_target(sfn_sandbox, sfn_engine, playbook, params,
                             ec2_targets(fleet.targets)[0])

    # Before the fix: FAILED with States.Runtime, KeyError('RequestId'), nothing caught.
    assert (outcome.status, outcome.error) == ("FAILED", "remediate.RolledBack")
    # A program's call names itself and the target (like every ported action's).
    assert outcome.cause is not None and outcome.cause.startswith(
        f"step repair failed: SendCommand for {fleet.targets[0].instance_id} failed: not "
        "allowed (Service: ssm, Status Code: 400, Request ID: ")
    assert rescue_instances(sfn_sandbox) == []
    assert end_state(sfn_sandbox, fleet.targets[0]).root_in_place
