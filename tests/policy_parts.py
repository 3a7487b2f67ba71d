"""Pieces the generated IAM policies share, as the policy tests expect them exactly."""

from __future__ import annotations

from typing import Any, Final

# What ec2.inspect reads, on any resource (EC2's Describe calls have no resource-level
# permissions).
INSPECT: Final = [
    "ec2:DescribeAddresses", "ec2:DescribeImages", "ec2:DescribeInstanceAttribute",
    "ec2:DescribeInstanceStatus", "ec2:DescribeInstanceTypes", "ec2:DescribeInstances",
    "ec2:DescribeSpotInstanceRequests", "ec2:DescribeVolumes"]
# Every policy's last statement.
DENY: Final[dict[str, Any]] = {
    "Sid": "RemediateNeverDeletes", "Effect": "Deny",
    "Action": ["ec2:DeleteSnapshot", "ec2:DeleteVolume", "workspaces:TerminateWorkspaces"],
    "Resource": "*"}
