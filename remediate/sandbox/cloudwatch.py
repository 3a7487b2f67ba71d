"""CloudWatch's DescribeAlarms as AWS validates it: at most 100 ``AlarmNames``.

moto answers for any number of names; AWS refuses more than 100 ("AlarmNames ...
Maximum number of 100 items",
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_DescribeAlarms.html)
with a ValidationError, so a caller that sends them all at once fails on AWS only.
"""

from __future__ import annotations

from typing import Any, Final

from moto.cloudwatch.exceptions import ValidationError
from moto.cloudwatch.responses import CloudWatchResponse

from remediate.sandbox.patcher import Patcher

MAX_ALARM_NAMES: Final = 100


def install(patcher: Patcher) -> None:
    original = patcher.original(CloudWatchResponse, "describe_alarms")

    def describe_alarms(self: Any) -> Any:
        names = self._get_param("AlarmNames", []) or []
        if len(names) > MAX_ALARM_NAMES:
            raise ValidationError(
                f"1 validation error detected: Value '{names}' at 'alarmNames' failed to "
                f"satisfy constraint: Member must have length less than or equal to "
                f"{MAX_ALARM_NAMES}")
        return original(self)

    patcher.set(CloudWatchResponse, "describe_alarms", describe_alarms)
