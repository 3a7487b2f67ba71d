"""The end of a Step Functions iteration that used a rescue instance (rescue.attach_volume's
cleanup program): whatever happened, the target's rescue instance is terminated, never
with a customer volume on it."""

from __future__ import annotations

from typing import Any

import yaml
from sfn_support import NO_RETRIES, REGION, ec2_targets, from_text, rescue_instances, run_one_target

from remediate.export.moto_engine import MotoStepFunctions
from remediate.sandbox import FleetSpec, Sandbox

IMAGE = "resolve:ssm:/aws/service/ami-windows-latest/Windows_Server-2022-English-Full-Base"


def playbook(*then: dict[str, Any]) -> str:
    """Attach the volume ``params.volume`` to the target's rescue instance, then ``then``."""
    return yaml.safe_dump({
        "version": 1, "name": "cleanup", "parameters": {"volume": {"type": "string"}},
        "targets": {"kind": "ec2-instance", "tags": {"incident": "crowdstrike-2024-07-19"}},
        "steps": [{"id": "attach", "action": "rescue.attach_volume",
                   "with": {"rescue_image_id": IMAGE, "volume_id": "${{ params.volume }}"}},
                  *then]}, sort_keys=False)


def setup(sb: Sandbox) -> tuple[Any, str]:
    """One target, and a volume beside it (in its AZ) to attach."""
    [target] = sb.build_fleet(FleetSpec(plain=1, azs=1)).targets
    volume = sb.client("ec2", REGION, NO_RETRIES).create_volume(
        AvailabilityZone=target.availability_zone, Size=8)["VolumeId"]
    return target, str(volume)


def attachment(sb: Sandbox, volume_id: str) -> tuple[str, list[str]]:
    found = sb.client("ec2", REGION, NO_RETRIES).describe_volumes(VolumeIds=[volume_id])
    volume = found["Volumes"][0]
    return volume["State"], [a["InstanceId"] for a in volume["Attachments"]]


def test_a_failure_after_the_attach_leaves_the_volume_available_and_no_rescue_instance(
        sfn_sandbox: Sandbox, sfn_engine: MotoStepFunctions) -> None:
    target, volume = setup(sfn_sandbox)
    text = playbook({"id": "boom", "action": "control.fail", "with": {"message": "no"}})

    outcome = run_one_target(sfn_sandbox, sfn_engine, *from_text(text, volume=volume),
                             ec2_targets([target])[0])

    assert (outcome.status, outcome.error, outcome.cause) == (
        "FAILED", "remediate.Failed", "step boom failed: no")
    assert attachment(sfn_sandbox, volume) == ("available", [])
    assert rescue_instances(sfn_sandbox) == []
    calls = sfn_sandbox.api_call_counts()
    assert (calls[("ec2", "RunInstances")], calls[("ec2", "TerminateInstances")]) == (1, 1)


def test_a_volume_that_will_not_come_off_keeps_its_rescue_instance(
        sfn_sandbox: Sandbox, sfn_engine: MotoStepFunctions) -> None:
    target, volume = setup(sfn_sandbox)
    sfn_sandbox.fail("DetachVolume", "UnauthorizedOperation",
                     "You are not authorized to perform this operation.")

    outcome = run_one_target(sfn_sandbox, sfn_engine, *from_text(playbook(), volume=volume),
                             ec2_targets([target])[0])

    assert (outcome.status, outcome.error) == ("FAILED", "remediate.CleanupFailed")
    assert outcome.cause is not None and outcome.cause.startswith(
        f"cleanup failed: DetachVolume for {target.instance_id} failed: You are not authorized")
    [rescue] = rescue_instances(sfn_sandbox)
    assert attachment(sfn_sandbox, volume) == ("in-use", [rescue])
    assert sfn_sandbox.api_call_counts()[("ec2", "TerminateInstances")] == 0
