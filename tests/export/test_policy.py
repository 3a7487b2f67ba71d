"""The state machine role's policy: every SDK call of the definition, and the contracts."""

from __future__ import annotations

import pytest
from iam_grammar import problems
from policy_parts import DENY
from sfn_support import builtin

from remediate.export import compile_playbook, role_policy
from remediate.export.policy import sdk_calls
from remediate.permissions import policy_document

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:ec2-reboot-first"


def test_the_role_may_make_every_call_the_definition_makes() -> None:
    playbook, params = builtin("ec2-offline-repair.yaml", rescue_image_id="ami-0123456789abcdef0")
    definition = compile_playbook(playbook, params)
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:ec2-offline-repair"

    policy = role_policy(playbook, definition, state_machine_arn=arn,
                         role_arn="arn:aws:iam::210987654321:role/target")

    allowed = {a for s in policy["Statement"] if s["Effect"] == "Allow" for a in s["Action"]}
    assert set(sdk_calls(definition)) <= allowed
    assert {"ec2:RunInstances", "ec2:TerminateInstances", "ssm:SendCommand",
            "ec2:DetachVolume", "kms:CreateGrant"} <= allowed
    # The inspection's reads, as the local engine's (each iteration asks for itself)...
    assert {"ec2:DescribeAddresses", "ec2:DescribeInstanceTypes", "kms:DescribeKey",
            "ec2:DescribeInstanceAttribute", "ec2:DescribeSpotInstanceRequests"} <= allowed
    # ...but only what the definition calls: no role passed (no instance profile), no
    # claims, none of the local engine's own calls.
    assert allowed.isdisjoint({"iam:PassRole", "ec2:DeleteTags", "ssm:ListCommandInvocations"})
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["RemediateDistributedMap"]["Resource"] == [
        "arn:aws:states:us-east-1:123456789012:execution:ec2-offline-repair:*", arn]
    assert statements["RemediateAssumeTargetRole"]["Resource"] == [
        "arn:aws:iam::210987654321:role/target"]


def test_sdk_calls_are_named_like_iam_actions() -> None:
    playbook, params = builtin("ec2-reboot-first.yaml")
    assert sdk_calls(compile_playbook(playbook, params)) == [
        "ec2:DescribeAddresses", "ec2:DescribeInstanceStatus", "ec2:DescribeInstanceTypes",
        "ec2:DescribeInstances", "ec2:DescribeSpotInstanceRequests", "ec2:DescribeVolumes",
        "ec2:RebootInstances", "kms:DescribeKey"]


def test_the_role_gets_the_statements_iam_policy_prints_for_its_calls_and_its_own() -> None:
    playbook, params = builtin("ec2-offline-repair.yaml", rescue_image_id="ami-0123456789abcdef0")
    definition = compile_playbook(playbook, params)

    policy = role_policy(playbook, definition)

    assert problems(policy) == []
    called = set(sdk_calls(definition)) | {"ec2:CreateTags", "kms:CreateGrant", "kms:Decrypt"}
    printed = policy_document(playbook)["Statement"][:-1]
    scoped = [s for s in printed if s["Resource"] != "*" and set(s["Action"]) <= called]
    assert policy["Statement"][3:] == [
        *scoped,
        {"Sid": "RemediateDistributedMap", "Effect": "Allow", "Action": [
            "states:DescribeExecution", "states:StartExecution", "states:StopExecution"],
         "Resource": ["*"]},
        DENY]
    assert policy["Statement"][:3] == [
        {"Sid": "RemediateEc2", "Effect": "Allow", "Action": [
            "ec2:DescribeAddresses", "ec2:DescribeCapacityReservations", "ec2:DescribeImages",
            "ec2:DescribeInstanceAttribute", "ec2:DescribeInstanceStatus",
            "ec2:DescribeInstanceTypes", "ec2:DescribeInstances", "ec2:DescribeSnapshots",
            "ec2:DescribeSpotInstanceRequests", "ec2:DescribeSubnets",
            "ec2:DescribeVolumes"],
         "Resource": "*"},
        {"Sid": "RemediateKms", "Effect": "Allow", "Action": ["kms:DescribeKey"],
         "Resource": "*"},
        {"Sid": "RemediateSsm", "Effect": "Allow", "Action": [
            "ssm:DescribeInstanceInformation", "ssm:GetCommandInvocation"], "Resource": "*"}]


def test_role_policy_of_reboot_first() -> None:
    playbook, params = builtin("ec2-reboot-first.yaml")
    policy = role_policy(playbook, compile_playbook(playbook, params),
                         state_machine_arn=MACHINE)
    assert problems(policy) == []
    assert policy == {"Version": "2012-10-17", "Statement": [
        {"Sid": "RemediateEc2", "Effect": "Allow", "Action": [
            "ec2:DescribeAddresses", "ec2:DescribeInstanceStatus", "ec2:DescribeInstanceTypes",
            "ec2:DescribeInstances", "ec2:DescribeSpotInstanceRequests", "ec2:DescribeVolumes"],
         "Resource": "*"},
        {"Sid": "RemediateKms", "Effect": "Allow", "Action": ["kms:DescribeKey"],
         "Resource": "*"},
        {"Sid": "RemediateEc2RebootInstancesOnTargets", "Effect": "Allow",
         "Action": ["ec2:RebootInstances"], "Resource": ["arn:aws:ec2:*:*:instance/*"],
         "Condition": {"StringEquals": {"aws:ResourceTag/incident": "crowdstrike-2024-07-19"}}},
        {"Sid": "RemediateDistributedMap", "Effect": "Allow", "Action": [
            "states:DescribeExecution", "states:StartExecution", "states:StopExecution"],
         "Resource": ["arn:aws:states:us-east-1:123456789012:execution:ec2-reboot-first:*",
                      MACHINE]},
        DENY]}


def test_a_read_no_action_declares_is_granted_on_any_resource() -> None:
    playbook, _ = builtin("ec2-reboot-first.yaml")
    definition = {"States": {
        "regions": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:ec2:describeRegions"},
        "reboot": {"Type": "Task",
                   "Resource": "arn:aws:states:::aws-sdk:ec2:rebootInstances"}}}
    policy = role_policy(playbook, definition)
    assert policy["Statement"][:2] == [
        {"Sid": "RemediateEc2", "Effect": "Allow", "Action": ["ec2:DescribeRegions"],
         "Resource": "*"},
        {"Sid": "RemediateEc2RebootInstancesOnTargets", "Effect": "Allow",
         "Action": ["ec2:RebootInstances"], "Resource": ["arn:aws:ec2:*:*:instance/*"],
         "Condition": {"StringEquals": {"aws:ResourceTag/incident": "crowdstrike-2024-07-19"}}}]


def test_a_change_no_action_declares_is_refused() -> None:
    playbook, _ = builtin("ec2-reboot-first.yaml")
    definition = {"States": {
        "stop": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:ec2:stopInstances"}}}
    with pytest.raises(ValueError) as refused:
        role_policy(playbook, definition)
    assert str(refused.value) == (
        f"the definition calls ec2:StopInstances, which no action of {playbook.source} "
        "declares: declare it in the action's scoped_permissions")
