"""Calls outside the executor retried on the clock: boto3 against the sandbox, faults injected."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore_support import NO_RETRIES

from remediate.aws.retry import RetryPolicy
from remediate.aws.retrying import RetryingClient
from remediate.clock import VirtualClock
from remediate.sandbox import Sandbox


def sfn(sandbox: Sandbox, clock: VirtualClock, retries: list[tuple[str, int, float]],
        policy: RetryPolicy | None = None) -> Any:
    return RetryingClient(sandbox.client("stepfunctions", config=NO_RETRIES), clock, policy,
                          on_retry=lambda error, n, delay: retries.append((error.code, n, delay)))


def calls(sandbox: Sandbox, operation: str) -> int:
    return sandbox.api_call_counts()[("stepfunctions", operation)]


def test_throttling_is_retried_with_full_jitter_waiting_on_the_clock(
        sandbox: Sandbox, clock: VirtualClock) -> None:
    retries: list[tuple[str, int, float]] = []
    sandbox.fail("ListStateMachines", "ThrottlingException", "Rate exceeded", times=3)

    found = sfn(sandbox, clock, retries).list_state_machines()

    assert found["stateMachines"] == []
    assert [(code, n) for code, n, _ in retries] == [("ThrottlingException", 1),
                                                     ("ThrottlingException", 2),
                                                     ("ThrottlingException", 3)]
    # Full jitter: each delay in [0, 0.5 * 2 ** (n - 1)]; the clock moved by their sum.
    assert all(0.0 <= delay <= 0.5 * 2 ** (n - 1) for _, n, delay in retries)
    assert clock.now() == pytest.approx(sum(delay for *_, delay in retries))
    assert calls(sandbox, "ListStateMachines") == 4


def test_a_transient_error_is_retried_too(sandbox: Sandbox, clock: VirtualClock) -> None:
    retries: list[tuple[str, int, float]] = []
    sandbox.fail("ListStateMachines", "ServiceUnavailable", "try again", times=1)

    assert sfn(sandbox, clock, retries).list_state_machines()["stateMachines"] == []
    assert [code for code, *_ in retries] == ["ServiceUnavailable"]


def test_other_errors_are_raised_at_once_as_boto3_raised_them(
        sandbox: Sandbox, clock: VirtualClock) -> None:
    retries: list[tuple[str, int, float]] = []
    missing = "arn:aws:states:us-east-1:123456789012:execution:machine:gone"

    with pytest.raises(ClientError) as raised:
        sfn(sandbox, clock, retries).describe_execution(executionArn=missing)

    assert str(raised.value) == (
        "An error occurred (ExecutionDoesNotExist) when calling the DescribeExecution "
        f"operation (reached max retries: 0): Execution Does Not Exist: '{missing}'")
    assert (retries, clock.now(), calls(sandbox, "DescribeExecution")) == ([], 0.0, 1)


def test_retries_stop_when_the_policy_says_and_the_last_error_is_raised(
        sandbox: Sandbox, clock: VirtualClock) -> None:
    retries: list[tuple[str, int, float]] = []
    sandbox.fail("ListStateMachines", "ThrottlingException", "Rate exceeded")

    with pytest.raises(ClientError) as raised:
        sfn(sandbox, clock, retries, RetryPolicy(max_attempts=3)).list_state_machines()

    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    assert [n for _, n, _ in retries] == [1, 2]
    assert calls(sandbox, "ListStateMachines") == 3


def test_what_is_not_an_api_call_is_the_clients_own(sandbox: Sandbox,
                                                    clock: VirtualClock) -> None:
    raw = sandbox.client("stepfunctions", config=NO_RETRIES)
    client = RetryingClient(raw, clock)

    assert client.meta is raw.meta
    assert client.exceptions is raw.exceptions
    pages = list(client.get_paginator("list_state_machines").paginate())
    assert [p["stateMachines"] for p in pages] == [[]]
