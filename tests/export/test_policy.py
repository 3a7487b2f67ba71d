"""The state machine role's policy: every SDK call of the definition, and the contracts."""

from __future__ import annotations

from sfn_support import builtin

from remediate.export import compile_playbook, role_policy
from remediate.export.policy import sdk_calls


def test_the_role_may_make_every_call_the_definition_makes() -> None:
    playbook, params = builtin("ec2-offline-repair.yaml", rescue_image_id="ami-0123456789abcdef0")
    definition = compile_playbook(playbook, params)
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:ec2-offline-repair"

    policy = role_policy(playbook, definition, state_machine_arn=arn,
                         role_arn="arn:aws:iam::210987654321:role/target")

    allowed = {a for s in policy["Statement"] for a in s["Action"]}
    assert set(sdk_calls(definition)) <= allowed
    assert {"ec2:RunInstances", "ec2:TerminateInstances", "ssm:SendCommand",
            "ec2:DetachVolume", "iam:PassRole"} <= allowed
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["RemediateDistributedMap"]["Resource"] == [
        "arn:aws:states:us-east-1:123456789012:execution:ec2-offline-repair:*", arn]
    assert statements["RemediateAssumeTargetRole"]["Resource"] == [
        "arn:aws:iam::210987654321:role/target"]


def test_sdk_calls_are_named_like_iam_actions() -> None:
    playbook, params = builtin("ec2-reboot-first.yaml")
    assert sdk_calls(compile_playbook(playbook, params)) == [
        "ec2:DescribeInstanceStatus", "ec2:DescribeInstances", "ec2:DescribeVolumes",
        "ec2:RebootInstances"]
