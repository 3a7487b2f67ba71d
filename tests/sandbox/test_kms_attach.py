"""Attaching an encrypted volume: KMS must let the caller use its key through EC2.

EC2 asks KMS, on the caller's behalf, for a grant and Decrypt
(https://docs.aws.amazon.com/ebs/latest/userguide/ebs-encryption-requirements.html). When
KMS refuses, the sandbox fails the attachment as it does for an unusable key: the volume
goes ``attaching``, then ``available`` with no attachment (remediate.sandbox.kms_access).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore_support import NO_RETRIES

from remediate.clock import VirtualClock
from remediate.sandbox import FleetSpec, Sandbox

from .conftest import volume

ACCOUNT = "123456789012"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
CALLER = f"arn:aws:sts::{ACCOUNT}:user/moto"  # moto's identity for the sandbox's credentials
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/key-admin"
VIA_EC2 = {"StringEquals": {"kms:ViaService": "ec2.us-east-1.amazonaws.com"}}


def key_policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal: str, action: Any = "kms:*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": action,
            "Resource": "*", **extra}


ADMIN_ONLY = key_policy(allow(ADMIN))


@pytest.mark.parametrize(("policy", "grant", "iam", "attached"), [
    (None, None, None, True),  # KMS's default key policy: the account's IAM decides
    (ADMIN_ONLY, None, None, False),
    (key_policy(allow(CALLER, ["kms:CreateGrant", "kms:Decrypt"], Condition=VIA_EC2)),
     None, None, True),
    # The condition is evaluated: through EC2 only, and EC2 is who asks.
    (key_policy(allow(CALLER, ["kms:CreateGrant", "kms:Decrypt"], Condition={
        "StringEquals": {"kms:ViaService": "rds.us-east-1.amazonaws.com"}})), None, None, False),
    (ADMIN_ONLY, ["CreateGrant", "Decrypt"], None, True),
    (ADMIN_ONLY, ["Decrypt"], None, False),
    (key_policy(allow(ROOT), {"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt",
                              "Resource": "*", "Condition": VIA_EC2}),
     ["CreateGrant", "Decrypt"], None, False),
    # Delegated to IAM: the caller's IAM policy decides.
    (None, None, ["ec2:*"], False),
    (None, None, ["ec2:*", "kms:CreateGrant", "kms:Decrypt"], True),
], ids=["default", "admin-only", "caller-via-ec2", "caller-via-rds", "granted",
        "half-granted", "deny-wins", "iam-without-kms", "iam-with-kms"])
def test_attaching_needs_the_caller_allowed_the_key_through_ec2(
        policy: str | None, grant: list[str] | None, iam: list[str] | None,
        attached: bool) -> None:
    clock = VirtualClock()
    with Sandbox(clock=clock) as sandbox:
        fleet = sandbox.build_fleet(FleetSpec(plain=0, encrypted=1, azs=1))
        ec2, kms = sandbox.client("ec2", config=NO_RETRIES), sandbox.client("kms")
        target = fleet.by_kind("encrypted")[0]
        key = fleet.regions["us-east-1"].kms_key_id
        assert sandbox.client("sts").get_caller_identity()["Arn"] == CALLER
        if policy is not None:
            kms.put_key_policy(KeyId=key, PolicyName="default", Policy=policy)
        if grant is not None:
            kms.create_grant(KeyId=key, GranteePrincipal=CALLER, Operations=grant)
        ec2.stop_instances(InstanceIds=[target.instance_id])
        clock.advance(90)
        ec2.detach_volume(VolumeId=target.root_volume_id)
        clock.advance(10)
        if iam is not None:
            sandbox.enforce_policy({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": iam, "Resource": "*"}]})

        answer = ec2.attach_volume(VolumeId=target.root_volume_id,
                                   InstanceId=target.instance_id, Device="/dev/sda1")
        assert answer["State"] == "attaching"
        clock.advance(5)

        found = volume(ec2, target.root_volume_id)
        if attached:
            assert (found["State"], found["Attachments"][0]["State"]) == ("in-use", "attached")
        else:
            assert (found["State"], found["Attachments"], found["Encrypted"]) == (
                "available", [], True)
