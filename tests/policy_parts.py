"""Pieces the generated IAM policies share, as the policy tests expect them exactly."""

from __future__ import annotations

from typing import Any, Final

# What ec2.inspect reads, and the claim tag (remediate.claims, DescribeTags), on any
# resource (EC2's Describe calls have no resource-level permissions).
INSPECT: Final = [
    "ec2:DescribeAddresses", "ec2:DescribeImages", "ec2:DescribeInstanceAttribute",
    "ec2:DescribeInstanceStatus", "ec2:DescribeInstanceTypes", "ec2:DescribeInstances",
    "ec2:DescribeSpotInstanceRequests", "ec2:DescribeTags", "ec2:DescribeVolumes"]
# Every policy's last statement.
DENY: Final[dict[str, Any]] = {
    "Sid": "RemediateNeverDeletes", "Effect": "Deny",
    "Action": ["ec2:DeleteSnapshot", "ec2:DeleteVolume", "workspaces:TerminateWorkspaces"],
    "Resource": "*"}
INSTANCES: Final = "arn:aws:ec2:*:*:instance/*"
VOLUMES: Final = "arn:aws:ec2:*:*:volume/*"
SNAPSHOTS: Final = "arn:aws:ec2:*::snapshot/*"
WORKSPACES: Final = "arn:aws:workspaces:*:*:workspace/*"
# What the built-in playbooks select their targets by.
INCIDENT: Final = {"aws:ResourceTag/incident": "crowdstrike-2024-07-19"}
KMS_READ: Final[dict[str, Any]] = {"Sid": "RemediateKms", "Effect": "Allow",
                                   "Action": ["kms:DescribeKey"], "Resource": "*"}
SSM_PARAMETER: Final[dict[str, Any]] = {"Sid": "RemediateSsm", "Effect": "Allow",
                                        "Action": ["ssm:GetParameter"], "Resource": "*"}
# ec2.inspect reads Default Host Management Configuration (remediate.actions.manageability).
SSM_SERVICE_SETTING: Final[dict[str, Any]] = {
    "Sid": "RemediateSsmGetServiceSetting", "Effect": "Allow",
    "Action": ["ssm:GetServiceSetting"], "Resource": [
        "arn:aws:ssm:*:*:servicesetting/ssm/managed-instance/"
        "default-ec2-instance-management-role"]}
# ec2.inspect reads the key policy and grants of an encrypted root's key
# (remediate.actions.kms_access), on keys only.
KMS_KEY_READ: Final[dict[str, Any]] = {
    "Sid": "RemediateKmsKey", "Effect": "Allow", "Action": ["kms:GetKeyPolicy", "kms:ListGrants"],
    "Resource": ["arn:aws:kms:*:*:key/*"]}
CLAIM_KEY_ONLY: Final[dict[str, Any]] = {
    "ForAllValues:StringEquals": {"aws:TagKeys": "remediate:claim"},
    "Null": {"aws:TagKeys": "false"}}


def ec2_claim(targets: dict[str, Any]) -> dict[str, Any]:
    """Tagging the targets (``targets``: their condition block) claimed, that key only."""
    return {"Sid": "RemediateEc2Claim", "Effect": "Allow",
            "Action": ["ec2:CreateTags", "ec2:DeleteTags"], "Resource": [INSTANCES],
            "Condition": {**CLAIM_KEY_ONLY, **targets}}

