"""Service Quotas' GetServiceQuota for EC2's standard vCPUs and EBS snapshots (moto has
only VPC's): AWS's answer shape, the sandbox's defaults, a value set per account and
Region, and moto's own answers for everything else."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from remediate.sandbox import Sandbox


def value(sandbox: Sandbox, service: str, code: str, region: str = "us-east-1") -> float:
    quotas = sandbox.client("service-quotas", region)
    return float(quotas.get_service_quota(ServiceCode=service, QuotaCode=code)["Quota"]["Value"])


def test_the_two_quotas_answer_with_their_defaults(sandbox: Sandbox) -> None:
    quota = sandbox.client("service-quotas").get_service_quota(
        ServiceCode="ec2", QuotaCode="L-1216C47A")["Quota"]

    assert quota == {
        "ServiceCode": "ec2", "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
        "QuotaArn": "arn:aws:servicequotas:us-east-1:123456789012:ec2/L-1216C47A",
        "QuotaCode": "L-1216C47A",
        "QuotaName": "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
        "Value": 100000.0, "Unit": "None", "Adjustable": True, "GlobalQuota": False}
    assert value(sandbox, "ebs", "L-309BACF6") == 100000.0


def test_a_value_set_holds_in_its_region_only(sandbox: Sandbox) -> None:
    sandbox.set_quota("ec2", "L-1216C47A", 64, region="eu-west-1")

    assert value(sandbox, "ec2", "L-1216C47A", "eu-west-1") == 64.0
    assert value(sandbox, "ec2", "L-1216C47A") == 100000.0


def test_other_quotas_are_moto_s(sandbox: Sandbox) -> None:
    assert value(sandbox, "vpc", "L-7E9ECCDB") == 50.0
    with pytest.raises(ClientError) as raised:
        value(sandbox, "ec2", "L-34B43A08")
    assert raised.value.response["Error"]["Code"] == "NoSuchResourceException"
