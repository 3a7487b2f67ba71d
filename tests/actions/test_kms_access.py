"""Whether a principal may use a KMS key through EC2 (remediate.actions.kms_access): the
judgement readiness and the pre-flight share."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from remediate.actions.kms_access import KeyAccess, judge, refusal, standing, warning

ACCOUNT = "123456789012"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
OPERATOR = f"arn:aws:iam::{ACCOUNT}:role/remediate"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/k1"


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(principal: Any, action: Any = "kms:*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": "*",
            **extra}


@pytest.mark.parametrize(("document", "expected"), [
    (policy(allow({"AWS": ROOT})), "iam"),
    (policy(allow({"AWS": [OPERATOR]}, ["kms:Decrypt", "kms:CreateGrant"])), "allowed"),
    # aws/ebs: anyone of the account, through EC2 (conditions taken as met on an Allow)
    (policy(allow({"AWS": "*"}, "kms:Create*", Condition={"StringEquals": {
        "kms:ViaService": "ec2.us-east-1.amazonaws.com"}})), "allowed"),
    (policy(allow("*")), "allowed"),
    (policy(allow({"AWS": "arn:aws:iam::123456789012:role/other"})), "none"),
    (policy(allow({"AWS": ROOT}, "kms:Decrypt")), "none"),
    (policy(allow({"AWS": ROOT}), {"Effect": "Deny", "Principal": "*",
                                   "Action": "kms:CreateGrant", "Resource": "*"}), "denied"),
    # A conditional Deny is taken as not applying (it cannot be evaluated here).
    (policy(allow({"AWS": ROOT}), {"Effect": "Deny", "Principal": "*",
                                   "Action": "kms:CreateGrant", "Resource": "*",
                                   "Condition": {"Bool": {"kms:GrantIsForAWSResource": "false"}}}),
     "iam"),
])
def test_the_key_policy_s_standing_for_create_grant(document: dict[str, Any],
                                                    expected: str) -> None:
    assert standing(document, OPERATOR, ACCOUNT, "kms:CreateGrant") == expected


def grant(*operations: str, to: str = OPERATOR) -> dict[str, Any]:
    return {"GranteePrincipal": to, "Operations": list(operations)}


@pytest.mark.parametrize(("document", "grants", "verdict", "actions"), [
    (policy(allow({"AWS": OPERATOR})), (), "allowed", ()),
    (policy(allow({"AWS": "arn:aws:iam::1:role/x"})), (), "denied",
     ("kms:CreateGrant", "kms:Decrypt")),
    (policy(allow({"AWS": OPERATOR}, "kms:CreateGrant")), (), "denied", ("kms:Decrypt",)),
    # a grant makes up for what the policy does not give, even with IAM delegation
    (policy(allow({"AWS": OPERATOR}, "kms:CreateGrant")), (grant("Decrypt"),), "allowed", ()),
    (policy(allow({"AWS": ROOT})), (grant("Decrypt", "CreateGrant"),), "allowed", ()),
    (policy(), (grant("Decrypt", to="arn:aws:iam::1:role/x"),), "denied",
     ("kms:CreateGrant", "kms:Decrypt")),
    (policy(allow({"AWS": ROOT})), (), "unchecked", ("kms:CreateGrant", "kms:Decrypt")),
    (policy(), None, "unchecked", ("kms:CreateGrant", "kms:Decrypt")),
    # a Deny wins over a grant
    (policy(allow({"AWS": OPERATOR}), {"Effect": "Deny", "Principal": {"AWS": OPERATOR},
                                       "Action": "kms:Decrypt", "Resource": "*"}),
     (grant("Decrypt"),), "denied", ("kms:Decrypt",)),
])
def test_the_verdict_weighs_policy_grants_and_denials(
        document: dict[str, Any], grants: tuple[dict[str, Any], ...] | None, verdict: str,
        actions: tuple[str, ...]) -> None:
    access = judge(KEY, OPERATOR, ACCOUNT, document, grants)

    assert (access.verdict, access.actions) == (verdict, actions)
    assert KeyAccess.from_fact(access.fact()) == access


def test_the_refusal_names_the_key_the_actions_and_the_statement_to_add() -> None:
    access = judge(KEY, OPERATOR, ACCOUNT, policy(), ())

    assert refusal("vol-1", "i-1", "us-east-1", access) == (
        f"root volume vol-1 of i-1 is encrypted with KMS key {KEY}, which {OPERATOR} may not "
        "use through EC2 (kms:CreateGrant, kms:Decrypt: no statement of the key policy allows "
        "it, and no grant does), so it could not be attached to a rescue instance: add to the "
        'key policy (aws kms put-key-policy): {"Effect": "Allow", "Principal": {"AWS": '
        f'"{OPERATOR}"}}, "Action": ["kms:CreateGrant", "kms:Decrypt"], "Resource": "*", '
        '"Condition": {"StringEquals": {"kms:ViaService": "ec2.us-east-1.amazonaws.com"}}}')


def test_an_iam_delegation_is_a_warning_saying_how_to_check_it() -> None:
    access = judge(KEY, OPERATOR, ACCOUNT, policy(allow({"AWS": ROOT})), ())

    assert warning(access) == (
        f"could not check that {OPERATOR} may use KMS key {KEY} through EC2 (kms:CreateGrant, "
        f"kms:Decrypt): the key policy leaves it to IAM policies (it allows {ROOT}), which a "
        "run does not read: `remediate readiness` checks them (iam:SimulatePrincipalPolicy)")


def test_the_messages_name_the_role_the_run_attaches_as() -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/service-role/remediate-sfn"
    denied = replace(judge(KEY, role, ACCOUNT, policy(allow(OPERATOR)), ()),
                     role="the state machine's role")
    unchecked = replace(judge(KEY, role, ACCOUNT, policy(allow({"AWS": ROOT})), ()),
                        role="the target role")

    assert refusal("vol-1", "i-1", "us-east-1", denied).startswith(
        f"root volume vol-1 of i-1 is encrypted with KMS key {KEY}, which the state machine's "
        f"role {role} may not use through EC2 (kms:CreateGrant, kms:Decrypt: ")
    assert f'{{"Effect": "Allow", "Principal": {{"AWS": "{role}"}}, ' in refusal(
        "vol-1", "i-1", "us-east-1", denied)
    assert warning(unchecked).startswith(
        f"could not check that the target role {role} may use KMS key {KEY} through EC2 ")
    assert KeyAccess.from_fact(denied.fact()) == denied
    assert denied.fact()["role"] == "the state machine's role"
    assert "role" not in judge(KEY, OPERATOR, ACCOUNT, policy(), ()).fact()  # the caller
