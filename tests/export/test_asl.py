"""ASL building blocks: run-time values in payloads, intrinsic literals, Choice rules."""

from __future__ import annotations

import pytest

from remediate.export import asl


def test_payload_marks_run_time_values_and_turns_lists_of_them_into_arrays() -> None:
    payload = asl.payload({
        "VolumeId": asl.path("$.target.root_volume_id"),
        "InstanceIds": [asl.path("$.target.id")],
        "Filters": [{"Name": "tag:run", "Values": [asl.path("$.run.id"), "other"]}],
        "Force": True,
        "Tags": [{"Key": "k", "Value": "v"}],
    })

    assert payload == {
        "VolumeId.$": "$.target.root_volume_id",
        "InstanceIds.$": "States.Array($.target.id)",
        "Filters": [{"Name": "tag:run", "Values.$": "States.Array($.run.id, 'other')"}],
        "Force": True,
        "Tags": [{"Key": "k", "Value": "v"}],
    }


def test_format_copies_text_and_reads_refs_at_run_time() -> None:
    assert asl.fmt("volume ", asl.path("$.v"), " is ", asl.path("$.s")).expr == (
        "States.Format('volume {} is {}', $.v, $.s)")


def test_characters_moto_cannot_read_escaped_become_look_alikes() -> None:
    assert asl.fmt("can't {fix} C:\\x ", asl.path("$.v")).expr == (
        "States.Format('can`t (fix) C:/x {}', $.v)")
    assert asl.array("it's", 3, None, True).expr == "States.Array('it`s', 3, null, true)"


def test_a_task_is_an_sdk_integration_with_retries_by_mutation() -> None:
    read = asl.task("ec2", "DescribeVolumes", {}, "next")
    write = asl.task("ec2", "DetachVolume", {}, None)

    assert read["Resource"] == "arn:aws:states:::aws-sdk:ec2:describeVolumes"
    assert (read["Retry"][0]["MaxAttempts"], write["Retry"][0]["MaxAttempts"]) == (5, 3)
    assert (read["Next"], write["End"]) == ("next", True)


def test_equality_checks_presence_and_type_first() -> None:
    assert asl.equals("$.x", "ok") == {"And": [
        {"Variable": "$.x", "IsPresent": True},
        {"And": [{"Variable": "$.x", "IsString": True},
                 {"Variable": "$.x", "StringEquals": "ok"}]}]}
    assert asl.equals("$.n", 0)["And"][1]["And"][1] == {"Variable": "$.n", "NumericEquals": 0}
    assert asl.equals("$.z", None)["And"][1] == {"Variable": "$.z", "IsNull": True}
    with pytest.raises(ValueError, match=r"cannot compare with \[1\] in a Choice state"):
        asl.equals("$.x", [1])


def test_a_path_that_is_not_jsonpath_is_refused() -> None:
    with pytest.raises(ValueError, match=r"not a JSONPath: 'target\.id'"):
        asl.path("target.id")
