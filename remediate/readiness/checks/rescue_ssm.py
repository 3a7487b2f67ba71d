"""Rescue instances would become SSM-managed (an instance profile, or DHMC on).

The offline repair runs its script on rescue instances through SSM Run Command; their
agent registers them only with an instance profile whose role allows it, or where
Default Host Management Configuration is on (the rules and AWS's pages:
:mod:`remediate.actions.manageability`, which `plan` and `run` use too). Without
either, every offline repair of the scope is refused at run time; this says so the
day before. Judged once per account and Region with rescue steps (one
GetServiceSetting, none when the playbook gives a profile).
"""

from __future__ import annotations

from collections.abc import Iterator

from remediate.actions import manageability
from remediate.readiness.check import Check, Settings, Verdict
from remediate.readiness.model import Rule
from remediate.readiness.region import Region

MANAGED = Rule("rescue-ssm-managed", "Rescue instances would be managed by SSM",
               "The repair runs on rescue instances through SSM: without an instance "
               "profile or Default Host Management Configuration they never register, "
               "and every offline repair of the Region is refused.")


def run(region: Region, settings: Settings) -> Iterator[Verdict]:
    if settings.rescue_image is None:  # no rescue step: not a rule of this playbook
        return
    if settings.rescue_instance_profile:
        yield Verdict(MANAGED, 1, [])
        return
    scope = region.scope
    found = manageability.from_setting(region.call(
        "ssm", "GetServiceSetting", SettingId=manageability.SETTING_PATH))
    failures = [] if found.managed else [region.fail(
        MANAGED, manageability.SETTING_PATH,
        manageability.refusal(scope.account, scope.region, found),
        "give the playbook a rescue instance profile (--param rescue_instance_profile=NAME, "
        "its role with AmazonSSMManagedInstanceCore), or turn on Default Host Management "
        f"Configuration (aws ssm update-service-setting --setting-id "
        f"{manageability.SETTING_PATH} --setting-value ROLE --region {scope.region})")]
    yield Verdict(MANAGED, 1, failures)


CHECK = Check((MANAGED,), run)
