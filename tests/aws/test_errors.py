"""The error classifier: every code of every set, and how boto3 exceptions become AwsErrors."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from remediate.actions.requests import AwsError
from remediate.aws.errors import (
    CAPACITY_CODES,
    EVENTUAL_CODES,
    THROTTLING_CODES,
    TRANSIENT_CODES,
    ErrorClass,
    classify,
    from_exception,
)


def test_the_sets_are_sets_of_codes_not_of_tuples() -> None:
    for codes in (THROTTLING_CODES, TRANSIENT_CODES, EVENTUAL_CODES, CAPACITY_CODES):
        assert isinstance(codes, frozenset)
        assert codes
        assert all(isinstance(code, str) and code and " " not in code for code in codes)


def test_no_code_is_in_two_sets() -> None:
    assert not THROTTLING_CODES & TRANSIENT_CODES
    assert not THROTTLING_CODES & EVENTUAL_CODES
    assert not TRANSIENT_CODES & EVENTUAL_CODES
    assert not CAPACITY_CODES & (THROTTLING_CODES | TRANSIENT_CODES | EVENTUAL_CODES)


@pytest.mark.parametrize("code", sorted(THROTTLING_CODES))
def test_every_throttling_code_is_throttled(code: str) -> None:
    assert classify(code) is ErrorClass.THROTTLED


@pytest.mark.parametrize("code", sorted(TRANSIENT_CODES))
def test_every_transient_code_is_transient(code: str) -> None:
    assert classify(code) is ErrorClass.TRANSIENT


@pytest.mark.parametrize("code", sorted(EVENTUAL_CODES))
def test_every_eventual_code_is_eventual(code: str) -> None:
    assert classify(code) is ErrorClass.EVENTUAL


def test_no_capacity_is_its_own_class_not_an_unknown_outcome() -> None:
    # AWS started nothing: not transient (a 5xx that may have acted), not throttling.
    assert classify("InsufficientInstanceCapacity") is ErrorClass.CAPACITY


@pytest.mark.parametrize("code", [
    "IncorrectInstanceState", "OperationNotPermitted", "UnauthorizedOperation",
    "InvalidParameterValue", "UnsupportedOperation", "requestlimitexceeded", "",
])
def test_anything_else_is_fatal(code: str) -> None:
    assert classify(code) is ErrorClass.FATAL


def test_a_client_error_keeps_code_message_operation_and_request_id() -> None:
    exc = ClientError({"Error": {"Code": "IncorrectInstanceState", "Message": "not stoppable"},
                       "ResponseMetadata": {"RequestId": "abc-123"}}, "StopInstances")

    error = from_exception(exc)

    assert (error.code, error.message, error.operation, error.request_id) == (
        "IncorrectInstanceState", "not stoppable", "StopInstances", "abc-123")
    assert str(error) == "IncorrectInstanceState: not stoppable"


def test_connection_failures_become_a_transient_connection_error() -> None:
    error = from_exception(EndpointConnectionError(endpoint_url="https://ec2"), "DescribeVolumes")

    assert error.code == "ConnectionError"
    assert error.operation == "DescribeVolumes"
    assert classify(error.code) is ErrorClass.TRANSIENT


def test_missing_credentials_are_fatal_and_say_so() -> None:
    error = from_exception(NoCredentialsError())

    assert error.code == "NoCredentials"
    assert error.message == "Unable to locate credentials"
    assert classify(error.code) is ErrorClass.FATAL


def test_an_aws_error_passes_through_unchanged() -> None:
    original = AwsError("Throttling", "slow down")
    assert from_exception(original) is original
