"""The small judgements readiness makes on its own: which instance types count against the
standard vCPU quota, whose permissions a session stands for."""

from __future__ import annotations

import pytest

from remediate.readiness.checks.iam_policy import context_entries
from remediate.readiness.checks.quotas import is_standard
from remediate.readiness.principal import as_principal

OPERATOR = "arn:aws:iam::123456789012:role/remediate"


@pytest.mark.parametrize(("instance_type", "standard"), [
    ("m5.large", True), ("c7i.xlarge", True), ("t3.micro", True), ("z1d.large", True),
    ("im4gn.large", True), ("r6g.medium", True), ("d3.xlarge", True), ("h1.2xlarge", True),
    ("inf1.xlarge", False), ("dl1.24xlarge", False), ("trn1.2xlarge", False),
    ("hpc6a.48xlarge", False), ("mac1.metal", False), ("p4d.24xlarge", False),
    ("g5.xlarge", False), ("x2idn.16xlarge", False), ("u-6tb1.metal", False),
])
def test_only_the_standard_families_count(instance_type: str, standard: bool) -> None:
    assert is_standard(instance_type) is standard


def test_an_assumed_role_session_stands_for_its_role() -> None:
    assert as_principal("arn:aws:sts::123456789012:assumed-role/remediate/ci-run") == OPERATOR
    assert as_principal(OPERATOR) == OPERATOR


def test_the_simulated_request_meets_a_statement_s_conditions() -> None:
    condition = {"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]},
                 "Null": {"aws:TagKeys": "false", "aws:ResourceTag/owner": "false",
                          "ec2:Attribute": "true"},
                 "StringEquals": {"aws:ResourceTag/incident": ["x", "y"]},
                 "Bool": {"kms:GrantIsForAWSResource": "true"}}

    assert context_entries(condition) == [
        {"ContextKeyName": "aws:TagKeys", "ContextKeyValues": ["a", "b"],
         "ContextKeyType": "stringList"},
        {"ContextKeyName": "aws:ResourceTag/incident", "ContextKeyValues": ["x"],
         "ContextKeyType": "string"},
        {"ContextKeyName": "kms:GrantIsForAWSResource", "ContextKeyValues": ["true"],
         "ContextKeyType": "boolean"},
        {"ContextKeyName": "aws:ResourceTag/owner", "ContextKeyValues": ["present"],
         "ContextKeyType": "string"},
    ]
