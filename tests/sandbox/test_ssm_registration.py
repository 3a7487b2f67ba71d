"""Which instances register with SSM: an instance profile whose role lets the agent, or
Default Host Management Configuration (the SSM service setting) in its account and
Region. One with neither runs, boots healthy, and never comes online in SSM."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from remediate.clock import VirtualClock
from remediate.sandbox import Fleet, FleetSpec, Sandbox
from remediate.sandbox.ssm_settings import DEFAULT_ROLE, DHMC_SETTING

from .conftest import NO_RETRIES, error_of

ARN = ("arn:aws:ssm:us-east-1:123456789012:servicesetting/ssm/managed-instance/"
       "default-ec2-instance-management-role")


@pytest.fixture
def off(sandbox: Sandbox) -> Fleet:
    return sandbox.build_fleet(FleetSpec(plain=1, azs=1, dhmc=False))


def _launch(sandbox: Sandbox, fleet: Fleet, clock: VirtualClock,
            profile: str | None = None) -> str:
    setup = fleet.regions["us-east-1"]
    extra: dict[str, Any] = {"IamInstanceProfile": {"Name": profile}} if profile else {}
    launched = sandbox.client("ec2", config=NO_RETRIES).run_instances(
        ImageId=setup.rescue_windows_ami, InstanceType="m5.large", MinCount=1, MaxCount=1,
        SubnetId=next(iter(setup.subnets.values())),
        MetadataOptions={"HttpTokens": "required"}, **extra)
    clock.advance(3600)  # long past any boot
    return str(launched["Instances"][0]["InstanceId"])


def _online(ssm: Any) -> dict[str, str]:
    listed = ssm.describe_instance_information()["InstanceInformationList"]
    return {row["InstanceId"]: row["PingStatus"] for row in listed}


def test_without_dhmc_or_a_profile_an_instance_never_comes_online(
        sandbox: Sandbox, off: Fleet, clock: VirtualClock, ssm: Any) -> None:
    rescue = _launch(sandbox, off, clock)

    assert rescue not in _online(ssm)
    with pytest.raises(ClientError) as excinfo:
        ssm.send_command(InstanceIds=[rescue], DocumentName="AWS-RunPowerShellScript",
                         Parameters={"commands": ["hostname"]})
    assert error_of(excinfo) == (
        "InvalidInstanceId",
        f"Instances [[{rescue}]] not in a valid state for account 123456789012")


def test_an_instance_profile_with_the_ssm_core_permissions_registers_it(
        sandbox: Sandbox, off: Fleet, clock: VirtualClock, ssm: Any) -> None:
    iam = sandbox.client("iam")
    iam.create_role(RoleName="bare", AssumeRolePolicyDocument="{}")
    iam.create_instance_profile(InstanceProfileName="bare")
    iam.add_role_to_instance_profile(InstanceProfileName="bare", RoleName="bare")
    managed = _launch(sandbox, off, clock, sandbox.ssm_instance_profile("rescue-ssm"))
    bare = _launch(sandbox, off, clock, "bare")

    assert _online(ssm) == {managed: "Online"}
    assert bare not in _online(ssm)


def test_turning_dhmc_on_registers_instances_without_a_profile(
        sandbox: Sandbox, off: Fleet, clock: VirtualClock, ssm: Any) -> None:
    rescue = _launch(sandbox, off, clock)
    assert ssm.get_service_setting(SettingId=DHMC_SETTING)["ServiceSetting"][
        "SettingValue"] == "$None"

    ssm.update_service_setting(SettingId=ARN, SettingValue="MyDhmcRole")

    setting = ssm.get_service_setting(SettingId=ARN)["ServiceSetting"]
    assert (setting["SettingId"], setting["SettingValue"], setting["ARN"],
            setting["Status"]) == (DHMC_SETTING, "MyDhmcRole", ARN, "Customized")
    # The fleet's target (boot-looping) too, but not online.
    assert _online(ssm) == {rescue: "Online", off.instance_ids()[0]: "ConnectionLost"}
    # Off again (AWS's default): they drop out.
    reset = ssm.reset_service_setting(SettingId=DHMC_SETTING)["ServiceSetting"]
    assert (reset["SettingValue"], reset["Status"]) == ("$None", "Default")
    assert _online(ssm) == {}


def test_the_default_fleet_has_dhmc_on_and_other_settings_are_not_modelled(
        sandbox: Sandbox, fleet: Fleet, ssm: Any) -> None:
    setting = ssm.get_service_setting(SettingId=DHMC_SETTING)["ServiceSetting"]
    assert (setting["SettingValue"], setting["Status"]) == (DEFAULT_ROLE, "Customized")
    with pytest.raises(ClientError) as excinfo:
        ssm.get_service_setting(SettingId="/ssm/parameter-store/high-throughput-enabled")
    assert error_of(excinfo) == (
        "ServiceSettingNotFound",
        "The specified service setting was not found: "
        "/ssm/parameter-store/high-throughput-enabled")


def test_a_sandbox_can_start_with_dhmc_off(clock: VirtualClock) -> None:
    with Sandbox(clock=clock, dhmc=False) as sandbox:
        ssm = sandbox.client("ssm", config=NO_RETRIES)
        setting = ssm.get_service_setting(SettingId=DHMC_SETTING)["ServiceSetting"]
    assert (setting["SettingValue"], setting["Status"]) == ("$None", "Default")
