"""The sandbox's IAM: policy evaluation as the IAM User Guide describes it."""

from __future__ import annotations

from typing import Any

import pytest

from remediate.sandbox.iam_eval import Authorization, decide

INSTANCE = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: str | list[str], resource: str | list[str] = "*",
          **condition: dict[str, Any]) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


def stop(context: dict[str, tuple[str, ...]] | None = None,
         resource: str = INSTANCE) -> Authorization:
    return Authorization("ec2:StopInstances", resource, context or {})


def test_an_explicit_deny_wins_and_nothing_is_allowed_by_default() -> None:
    deny = {"Effect": "Deny", "Action": "ec2:Stop*", "Resource": "*"}
    assert decide(policy(allow("ec2:StopInstances"), deny), stop()) == "denied"
    assert decide(policy(allow("ec2:StartInstances")), stop()) == "not allowed"
    assert decide(policy(allow("EC2:stopinstances")), stop()) == "allowed"  # case-insensitive


def test_resources_match_with_wildcards_and_star_only_matches_star_statements() -> None:
    assert decide(policy(allow("ec2:StopInstances", "arn:aws:ec2:*:*:instance/*")),
                  stop()) == "allowed"
    assert decide(policy(allow("ec2:StopInstances", "arn:aws:ec2:*:*:volume/*")),
                  stop()) == "not allowed"
    # An account left empty (images, AWS-owned documents) still matches "*".
    assert decide(policy(allow("ec2:RunInstances", "arn:aws:ec2:*:*:image/*")),
                  Authorization("ec2:RunInstances", "arn:aws:ec2:us-east-1::image/ami-1")) == \
        "allowed"
    # No resource-level permission: only "Resource": "*" matches.
    assert decide(policy(allow("ec2:DescribeInstances", "arn:aws:ec2:*:*:instance/*")),
                  Authorization("ec2:DescribeInstances", "*")) == "not allowed"


@pytest.mark.parametrize(("condition", "context", "decision"), [
    # Several keys of one operator: all must hold; several values of one key: any.
    ({"StringEquals": {"aws:ResourceTag/incident": "x", "aws:ResourceTag/team": ["a", "b"]}},
     {"aws:ResourceTag/incident": ("x",), "aws:ResourceTag/team": ("b",)}, "allowed"),
    ({"StringEquals": {"aws:ResourceTag/incident": "x", "aws:ResourceTag/team": ["a", "b"]}},
     {"aws:ResourceTag/incident": ("x",)}, "not allowed"),
    # Key names are case-insensitive, values are not.
    ({"StringEquals": {"aws:resourcetag/Incident": "x"}}, {"aws:ResourceTag/incident": ("x",)},
     "allowed"),
    ({"StringEquals": {"aws:ResourceTag/incident": "X"}}, {"aws:ResourceTag/incident": ("x",)},
     "not allowed"),
    ({"StringLike": {"kms:ViaService": "ec2.*.amazonaws.com"}},
     {"kms:ViaService": ("ec2.us-east-1.amazonaws.com",)}, "allowed"),
    ({"Null": {"ec2:Attribute/UserData": "true"}}, {}, "allowed"),
    ({"Null": {"ec2:Attribute/UserData": "true"}}, {"ec2:Attribute/UserData": ("x",)},
     "not allowed"),
    ({"Null": {"aws:ResourceTag/remediate:root-of": "false"}}, {}, "not allowed"),
    ({"Bool": {"kms:GrantIsForAWSResource": "true"}},
     {"kms:GrantIsForAWSResource": ("True",)}, "allowed"),
    # ForAllValues: every value listed; no values at all pass (hence the Null beside it).
    ({"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}, {"aws:TagKeys": ("a",)},
     "allowed"),
    ({"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}, {"aws:TagKeys": ("a", "c")},
     "not allowed"),
    ({"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}, {}, "allowed"),
    ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}}, {}, "not allowed"),
    # A missing key fails a plain operator, passes a negated one and ...IfExists.
    ({"StringEquals": {"aws:ResourceTag/team": "a"}}, {}, "not allowed"),
    ({"StringNotEquals": {"aws:ResourceTag/team": "a"}}, {}, "allowed"),
    ({"StringEqualsIfExists": {"aws:ResourceTag/team": "a"}}, {}, "allowed"),
    # ${$} is a dollar sign, ${*} a star; not wildcards.
    ({"StringEquals": {"aws:ResourceTag/owner": "${$}{aws:username}"}},
     {"aws:ResourceTag/owner": ("${aws:username}",)}, "allowed"),
    ({"StringLike": {"aws:ResourceTag/owner": "a${*}"}}, {"aws:ResourceTag/owner": ("ab",)},
     "not allowed"),
])
def test_conditions(condition: dict[str, Any], context: dict[str, tuple[str, ...]],
                    decision: str) -> None:
    assert decide(policy(allow("ec2:StopInstances", **condition)), stop(context)) == decision


def test_what_it_cannot_judge_is_an_error_not_an_allow() -> None:
    with pytest.raises(ValueError) as unknown:
        decide(policy(allow("ec2:StopInstances", DateLessThan={"aws:CurrentTime": "x"})),
               stop())
    assert str(unknown.value) == (
        "the sandbox does not evaluate the condition operator DateLessThan")
    with pytest.raises(ValueError) as unsupported:
        decide(policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}), stop())
    assert str(unsupported.value) == "the sandbox does not evaluate NotAction"
