"""SSM service settings, which moto lacks: Default Host Management Configuration (DHMC).

New ``GetServiceSetting``, ``UpdateServiceSetting`` and ``ResetServiceSetting`` for the
one setting remediate reads, ``/ssm/managed-instance/default-ec2-instance-management-role``,
per account and Region (SSM API reference, GetServiceSetting: the SettingId is the
setting's path or its ARN, ``arn:aws:ssm:REGION:ACCOUNT:servicesetting/PATH``). Its
SettingValue is the name of the IAM role Systems Manager gives the instances of the
account and Region; AWS's default is ``$None`` (DHMC off, Status ``Default``).
https://docs.aws.amazon.com/systems-manager/latest/userguide/fleet-manager-default-host-management-configuration.html

The sandbox starts each account and Region with DHMC on (``World.dhmc_by_default``,
``Sandbox(dhmc=False)`` to start it off), as the accounts its rehearsals stand for;
``FleetSpec(dhmc=False)`` turns it off in the fleet's Regions through ResetServiceSetting.
Whether an instance registers with SSM depends on it (:func:`dhmc_role`, see
:mod:`remediate.sandbox.ssm`). Other settings answer ``ServiceSettingNotFound``: not
modelled.
"""

from __future__ import annotations

from typing import Any, Final

from moto.core.responses import ActionResult
from moto.ssm.responses import SimpleSystemManagerResponse

from remediate.sandbox.errors import SandboxError
from remediate.sandbox.patcher import Patcher
from remediate.sandbox.state import World, current

DHMC_SETTING: Final = "/ssm/managed-instance/default-ec2-instance-management-role"
DEFAULT_ROLE: Final = "service-role/AWSSystemsManagerDefaultEC2InstanceManagementRole"
"""The role the sandbox's accounts have DHMC use (the role name AWS's quick setup creates)."""
UNSET: Final = "$None"
"""AWS's default value of the setting: DHMC off."""


def dhmc_role(world: World, account: str, region: str) -> str | None:
    """The role DHMC gives instances of ``account`` in ``region`` (None: DHMC is off)."""
    value = _value(world, account, region)
    return None if value in ("", UNSET) else value


def _value(world: World, account: str, region: str) -> str:
    stored = world.service_settings.get((account, region, DHMC_SETTING))
    if stored is not None:
        return stored
    return DEFAULT_ROLE if world.dhmc_by_default else UNSET


def _setting_path(setting_id: str, account: str, region: str) -> str:
    """The setting's path, from its path or ARN; ServiceSettingNotFound for any other."""
    arn_prefix = f"arn:aws:ssm:{region}:{account}:servicesetting"
    path = setting_id.removeprefix(arn_prefix)
    if path != DHMC_SETTING:
        # SSM API reference, GetServiceSetting errors: ServiceSettingNotFound (400).
        raise SandboxError("ServiceSettingNotFound",
                           f"The specified service setting was not found: {setting_id}")
    return path


def _described(world: World, account: str, region: str) -> dict[str, Any]:
    value = _value(world, account, region)
    return {
        "SettingId": DHMC_SETTING,
        "SettingValue": value,
        "LastModifiedDate": world.clock.wall(),
        "LastModifiedUser": "System" if value == UNSET else f"arn:aws:iam::{account}:root",
        "ARN": f"arn:aws:ssm:{region}:{account}:servicesetting{DHMC_SETTING}",
        "Status": "Default" if value == UNSET else "Customized",
    }


def install(patcher: Patcher) -> None:
    def get_service_setting(self: Any) -> ActionResult:
        world = current()
        _setting_path(self._get_param("SettingId"), self.current_account, self.region)
        with world.lock:
            return ActionResult({"ServiceSetting": _described(
                world, self.current_account, self.region)})

    def update_service_setting(self: Any) -> ActionResult:
        world = current()
        path = _setting_path(self._get_param("SettingId"), self.current_account, self.region)
        with world.lock:
            world.service_settings[(self.current_account, self.region, path)] = str(
                self._get_param("SettingValue"))
        return ActionResult({})

    def reset_service_setting(self: Any) -> ActionResult:
        world = current()
        path = _setting_path(self._get_param("SettingId"), self.current_account, self.region)
        with world.lock:
            world.service_settings[(self.current_account, self.region, path)] = UNSET
            return ActionResult({"ServiceSetting": _described(
                world, self.current_account, self.region)})

    patcher.set(SimpleSystemManagerResponse, "get_service_setting", get_service_setting)
    patcher.set(SimpleSystemManagerResponse, "update_service_setting", update_service_setting)
    patcher.set(SimpleSystemManagerResponse, "reset_service_setting", reset_service_setting)
