"""remediate.actions.manageability: how rescue instances would reach SSM, per account and
Region; the request it yields, and the same check through a boto3 client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from remediate.actions import manageability
from remediate.actions.manageability import Manageability
from remediate.actions.requests import AwsError, Call, StepFailed
from remediate.clock import VirtualClock
from remediate.sandbox import FleetSpec, Sandbox

PATH = "/ssm/managed-instance/default-ec2-instance-management-role"
ARN = f"arn:aws:ssm:eu-west-1:111122223333:servicesetting{PATH}"


def _answer(check: Iterator[Call], reply: object) -> Manageability:
    """Drive ``check``: its one request gets ``reply`` (an AwsError is raised into it)."""
    call = next(check)
    assert (call.service, call.operation, call.params) == (
        "ssm", "GetServiceSetting", {"SettingId": PATH})
    with pytest.raises(StopIteration) as done:
        if isinstance(reply, AwsError):
            check.throw(reply)
        else:
            check.send(reply)
    found: Manageability = done.value.value
    return found


def test_a_profile_decides_without_asking() -> None:
    with pytest.raises(StopIteration) as done:
        next(manageability.check("rescue-ssm", "prod", "eu-west-1"))
    assert done.value.value == Manageability("instance-profile", "rescue-ssm")


@pytest.mark.parametrize(("value", "expected"), [
    ("service-role/AWSSystemsManagerDefaultEC2InstanceManagementRole",
     Manageability("dhmc", "service-role/AWSSystemsManagerDefaultEC2InstanceManagementRole")),
    ("$None", Manageability("none", ARN)),
    ("", Manageability("none", ARN)),
])
def test_the_setting_value_says_whether_dhmc_is_on(value: str,
                                                   expected: Manageability) -> None:
    reply = {"ServiceSetting": {"SettingId": PATH, "SettingValue": value, "ARN": ARN}}
    assert _answer(manageability.check(None, "prod", "eu-west-1"), reply) == expected
    assert expected.managed is (expected.way == "dhmc")


def test_access_denied_is_unknown_and_names_the_grant() -> None:
    found = _answer(manageability.check("", "prod", "eu-west-1"),
                    AwsError("AccessDeniedException", "not authorized"))
    assert found.managed is None
    assert found == Manageability("unknown", (
        "GetServiceSetting: AccessDeniedException: not authorized; grant "
        f"ssm:GetServiceSetting on arn:aws:ssm:eu-west-1:*:servicesetting{PATH}"))


def test_another_error_fails_loudly() -> None:
    with pytest.raises(StepFailed, match=r"^GetServiceSetting for /ssm/managed-instance/"
                       r"default-ec2-instance-management-role in eu-west-1 failed: "
                       r"InternalServerError: boom$"):
        _answer(manageability.check(None, "prod", "eu-west-1"),
                AwsError("InternalServerError", "boom"))


@pytest.mark.parametrize("found", [
    Manageability("instance-profile", "arn:aws:iam::111122223333:instance-profile/x"),
    Manageability("dhmc", "service-role/R"), Manageability("none", ARN),
    Manageability("none"), Manageability("unknown", "GetServiceSetting: denied: x"),
])
def test_the_fact_reads_back(found: Manageability) -> None:
    assert Manageability.from_fact(found.fact()) == found


def test_not_a_fact_reads_as_none() -> None:
    assert Manageability.from_fact(None) is None
    assert Manageability.from_fact("sometimes: maybe") is None


def test_the_refusal_names_the_account_id_the_setting_arn_gives() -> None:
    assert manageability.refusal("prod", "eu-west-1", Manageability("none", ARN)) == (
        "rescue instances in prod/eu-west-1 (account 111122223333) would never be managed by "
        "SSM: no rescue_instance_profile, and Default Host Management Configuration is off "
        "there; the repair could not run and each target would wait the ready timeout")


def test_check_with_a_boto3_client_against_the_sandbox() -> None:
    with Sandbox(clock=VirtualClock()) as sandbox:
        sandbox.build_fleet(FleetSpec(plain=1, azs=1, regions=("us-east-1", "eu-west-1"),
                                      dhmc=False))
        east, west = sandbox.client("ssm", "us-east-1"), sandbox.client("ssm", "eu-west-1")
        west.update_service_setting(SettingId=PATH, SettingValue="DhmcRole")
        assert manageability.check_with(west, "eu-west-1") == Manageability("dhmc", "DhmcRole")
        assert manageability.check_with(east, "us-east-1").managed is False
        assert manageability.check_with(east, "us-east-1", "p") == Manageability(
            "instance-profile", "p")
        sandbox.fail("GetServiceSetting", "AccessDeniedException", "no")
        assert manageability.check_with(east, "us-east-1").way == "unknown"
