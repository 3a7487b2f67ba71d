"""Whether rescue instances would become SSM-managed, per account and Region.

A rescue instance is of use only once SSM runs the repair on it, and its SSM Agent
registers it only with credentials: from its instance profile, whose role needs the
AWS managed policy AmazonSSMManagedInstanceCore
(https://docs.aws.amazon.com/systems-manager/latest/userguide/setup-instance-permissions.html),
or, without one, from Default Host Management Configuration (DHMC) where it is on.
DHMC is the SSM service setting ``/ssm/managed-instance/default-ec2-instance-management-role``
of the account and Region: its SettingValue names the IAM role Systems Manager gives
the instances there; AWS's default, ``$None``, is off
(https://docs.aws.amazon.com/systems-manager/latest/userguide/fleet-manager-default-host-management-configuration.html;
SSM API reference, GetServiceSetting). With neither, a rescue instance runs but never
comes online in SSM, and every target of that account and Region would wait the ready
timeout (20 minutes) and fail.

:func:`check` yields its one request (GetServiceSetting, skipped when there is a
profile) so the executor paces, retries and logs it; :func:`check_with` asks the same
through a boto3 client (for a scorecard run outside the executor).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from remediate.actions.requests import AwsError, Call, StepFailed
from remediate.actions.scoped import Scoped, arn
from remediate.actions.shared_answers import Steps
from remediate.aws.errors import ACCESS_DENIED_CODES

SETTING_PATH: Final = "/ssm/managed-instance/default-ec2-instance-management-role"
PERMISSION: Final = "ssm:GetServiceSetting"
GRANT: Final = Scoped(PERMISSION, (arn("ssm", f"servicesetting{SETTING_PATH}"),))
"""What reading the setting needs: ssm:GetServiceSetting on that setting only."""
UNSET: Final[frozenset[str]] = frozenset({"", "$None"})
"""SettingValues meaning DHMC is off (``$None``: AWS's default)."""

Way = Literal["instance-profile", "dhmc", "none", "unknown"]
WAYS: Final[tuple[str, ...]] = get_args(Way)


def setting_arn(account: str, region: str) -> str:
    """The DHMC setting's ARN, as GetServiceSetting takes it and IAM policies name it."""
    return f"arn:aws:ssm:{region}:{account}:servicesetting{SETTING_PATH}"


@dataclass(frozen=True)
class Manageability:
    """How rescue instances of one account and Region would reach SSM.

    ``way``: ``instance-profile`` (``detail`` names it), ``dhmc`` (``detail``: its role),
    ``none`` (neither: they never would; ``detail``: the setting's ARN), ``unknown``
    (``detail``: why it could not be read)."""

    way: Way
    detail: str = ""

    @property
    def managed(self) -> bool | None:
        """True: they would be; False: never; None: could not be told."""
        return {"none": False, "unknown": None}.get(self.way, True)

    def fact(self) -> str:
        """The journaled fact: ``WAY`` or ``WAY: DETAIL``."""
        return f"{self.way}: {self.detail}" if self.detail else self.way

    @classmethod
    def from_fact(cls, fact: Any) -> Manageability | None:
        """The :meth:`fact` read back (None: not read, or not one)."""
        if not isinstance(fact, str):
            return None
        way, _, detail = fact.partition(": ")
        return cls(way, detail) if way in WAYS else None  # type: ignore[arg-type]


def from_setting(response: Mapping[str, Any]) -> Manageability:
    """From a GetServiceSetting answer for the DHMC setting: ``dhmc`` and its role, or
    ``none`` and the setting's ARN (which names the account)."""
    setting = response.get("ServiceSetting") or {}
    value = str(setting.get("SettingValue") or "")
    if value in UNSET:
        return Manageability("none", str(setting.get("ARN") or ""))
    return Manageability("dhmc", value)


def denied(region: str, error: str) -> Manageability:
    return Manageability("unknown", f"{error}; grant {PERMISSION} on {setting_arn('*', region)}")


def _where(account: str, region: str, manageability: Manageability) -> str:
    """``LABEL/REGION``, and the account id when the setting's ARN says it."""
    parts = manageability.detail.split(":")
    known = (f" (account {parts[4]})" if manageability.detail.startswith("arn:")
             and len(parts) > 5 and parts[4] != account else "")
    return f"{account}/{region}{known}"


def refusal(account: str, region: str, manageability: Manageability) -> str:
    """Why rescue instances of ``account`` and ``region`` are refused, in one line."""
    return (f"rescue instances in {_where(account, region, manageability)} would never be "
            "managed by SSM: no rescue_instance_profile, and Default Host Management "
            "Configuration is off there; the repair could not run and each target would "
            "wait the ready timeout")


def warning(account: str, region: str, manageability: Manageability) -> str:
    """The one line for ``unknown``: what could not be read, and the grant that would."""
    return (f"could not check that rescue instances in {account}/{region} would be managed "
            f"by SSM (Default Host Management Configuration): {manageability.detail}")


def check(instance_profile: str | None, account: str, region: str) -> Steps:
    """The :class:`Manageability` of rescue instances launched with ``instance_profile``
    (None or empty: none) in ``account`` (its label) and ``region``."""
    if instance_profile:
        return Manageability("instance-profile", instance_profile)
    try:
        # The setting's path: its ARN needs the account id, which ``account`` (a profile's
        # label) is not; the answer's ARN names it.
        response = yield Call("ssm", "GetServiceSetting", {"SettingId": SETTING_PATH},
                              note=f"Default Host Management Configuration in {account}/"
                                   f"{region}")
    except AwsError as exc:
        if exc.code in ACCESS_DENIED_CODES:
            return denied(region, f"GetServiceSetting: {exc}")
        raise StepFailed(f"GetServiceSetting for {SETTING_PATH} in {region} failed: "
                         f"{exc}") from exc
    return from_setting(response)


def check_with(ssm: Any, region: str, instance_profile: str | None = None) -> Manageability:
    """:func:`check` through ``ssm``, a boto3 SSM client of ``region``."""
    from botocore.exceptions import ClientError

    if instance_profile:
        return Manageability("instance-profile", instance_profile)
    try:
        return from_setting(ssm.get_service_setting(SettingId=SETTING_PATH))
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ACCESS_DENIED_CODES:
            return denied(region, f"GetServiceSetting: {code}")
        raise
