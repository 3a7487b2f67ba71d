"""Sandbox test: DescribeAlarms refuses more than 100 AlarmNames, as AWS does."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from botocore_support import NO_RETRIES

from remediate.sandbox import Sandbox


def test_describe_alarms_takes_at_most_100_names(sandbox: Sandbox) -> None:
    cloudwatch = sandbox.client("cloudwatch", config=NO_RETRIES)
    cloudwatch.put_metric_alarm(
        AlarmName="a-000", MetricName="5XXError", Namespace="AWS/ApplicationELB",
        Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=50.0,
        ComparisonOperator="GreaterThanThreshold")
    names = [f"a-{n:03d}" for n in range(101)]

    with pytest.raises(ClientError) as refused:
        cloudwatch.describe_alarms(AlarmNames=names)

    assert refused.value.response["Error"]["Code"] == "ValidationError"
    assert str(refused.value).endswith("Member must have length less than or equal to 100")
    found = cloudwatch.describe_alarms(AlarmNames=names[:100])["MetricAlarms"]
    assert [alarm["AlarmName"] for alarm in found] == ["a-000"]
