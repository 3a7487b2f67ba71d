"""The call layer: pacing, merging, retries, per-target fallback, dry-run refusal, journaling."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from executor_support import FakeAws, Harness, caller_for, client_error, one

from remediate.actions.requests import AwsError, Call, OutcomeUnknown, StepFailed
from remediate.aws.adaptive import DECREASE
from remediate.aws.apis import Bucket
from remediate.aws.retry import RetryPolicy
from remediate.executor.calls import MutationRefused
from remediate.executor.events import ApiOutcomeUnknown, ApiRetrying, Notice
from remediate.journal import Journal


def stop(instance_id: str) -> Call:
    return Call("ec2", "StopInstances", {"InstanceIds": [instance_id]}, batch_key="InstanceIds")


def stopping(service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"StoppingInstances": [{"InstanceId": i} for i in params.get("InstanceIds", [])]}


def test_calls_of_one_tick_merge_into_one_request_per_batch_limit() -> None:
    harness = Harness(FakeAws(stopping))
    ids = [f"i-{n:04d}" for n in range(1500)]

    results = harness.run(*((one(stop(i)), caller_for(i)) for i in ids))

    requests = harness.aws.of("StopInstances")
    assert [len(r.params["InstanceIds"]) for r in requests] == [1000, 500]
    assert [i for r in requests for i in r.params["InstanceIds"]] == ids
    # Each requester gets the whole merged response of its request.
    assert results[0][0]["StoppingInstances"][999] == {"InstanceId": "i-0999"}
    assert results[1499][0]["StoppingInstances"][0] == {"InstanceId": "i-1000"}


def test_only_calls_with_equal_other_params_merge() -> None:
    harness = Harness(FakeAws(stopping))
    force = Call("ec2", "StopInstances", {"InstanceIds": ["i-3"], "Force": True},
                 batch_key="InstanceIds")
    alone = Call("ec2", "StopInstances", {"InstanceIds": ["i-4"]})  # no batch_key: its own

    harness.run(one(stop("i-1")), one(stop("i-2")), one(force), one(alone), one(stop("i-1")))

    assert sorted(r.params["InstanceIds"] for r in harness.aws.of("StopInstances")) == [
        ["i-1", "i-2"], ["i-3"], ["i-4"]]


def test_a_batch_window_waits_for_company() -> None:
    harness = Harness(FakeAws(stopping), batch_window=2.0)

    def late(instance_id: str, after: float) -> Any:
        from remediate.actions.requests import Sleep
        yield Sleep(after)
        return (yield stop(instance_id))

    harness.run(late("i-1", 0.0), late("i-2", 1.5), late("i-3", 2.5))

    assert [r.params["InstanceIds"] for r in harness.aws.of("StopInstances")] == [
        ["i-1", "i-2"], ["i-3"]]


def test_calls_are_paced_to_the_bucket() -> None:
    harness = Harness(FakeAws(lambda *_: {}), limits={"ec2.mutating": Bucket(10, 5)})
    sent_at: list[float] = []

    def handler(*_: Any) -> dict[str, Any]:
        sent_at.append(harness.clock.now())
        return {}

    harness.aws.handler = handler

    harness.run(*(one(Call("ec2", "DetachVolume", {"VolumeId": f"vol-{n}"})) for n in range(20)))

    assert sent_at[:10] == [0.0] * 10
    assert sent_at[10:] == pytest.approx([0.2 * n for n in range(1, 11)])


def test_stop_instances_also_waits_for_its_resource_bucket() -> None:
    harness = Harness(FakeAws(stopping),
                      limits={"ec2.stop-instances-resource": Bucket(100, 20)})
    sent: list[tuple[float, int]] = []

    def handler(service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        sent.append((harness.clock.now(), len(params["InstanceIds"])))
        return stopping(service, operation, params)

    harness.aws.handler = handler

    harness.run(*(one(stop(f"i-{n}")) for n in range(300)))

    # 100 at once, then what 20 instances/s allow, in requests the request bucket permits.
    assert sent[0] == (0.0, 100)
    assert sum(count for _, count in sent) == 300
    assert sent[-1][0] == pytest.approx(10.0)


def test_throttled_calls_are_retried_later_and_announced() -> None:
    failures = iter([client_error("RequestLimitExceeded", "Request limit exceeded.")] * 2)

    def handler(service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        error = next(failures, None)
        if error is not None:
            raise error
        return {"Attachments": "ok"}

    harness = Harness(FakeAws(handler))
    call = Call("ec2", "AttachVolume", {"VolumeId": "vol-1", "InstanceId": "i-1",
                                        "Device": "xvdf"})

    [(result, error)] = harness.run((one(call), caller_for("i-1")))

    assert error is None and result["Attachments"] == "ok"
    retries = harness.of(ApiRetrying)
    assert [(r.api, r.code, r.attempt) for r in retries] == [
        ("ec2:AttachVolume", "RequestLimitExceeded", 1),
        ("ec2:AttachVolume", "RequestLimitExceeded", 2)]
    assert retries[0].targets == ("default/us-east-1/i-1",)
    # Each retry waits its backoff delay, and for a token of the bucket the throttle
    # emptied and slowed (5/s, cut by DECREASE a throttle: 0.29 s, then 0.41 s),
    # whichever is later.
    delays = [r.delay for r in retries]
    tokens = [1 / (5 * DECREASE), 1 / (5 * DECREASE**2)]
    assert (max(delays) <= harness.clock.now()
            <= sum(max(d, t) for d, t in zip(delays, tokens, strict=True)) + 1e-6)


def test_retries_give_up_after_max_attempts_and_throw_the_error_in() -> None:
    def handler(*_: Any) -> dict[str, Any]:
        raise client_error("ServiceUnavailable", "try later", request_id="req-7")

    harness = Harness(FakeAws(handler), retry=RetryPolicy(max_attempts=3))

    [(_, error)] = harness.run(one(Call("ec2", "DescribeVolumes", {"VolumeIds": ["vol-1"]})))

    assert isinstance(error, AwsError)
    assert (error.code, error.message, error.request_id) == ("ServiceUnavailable", "try later",
                                                             "req-7")
    assert harness.aws.count("DescribeVolumes") == 3


def lost_once(response: dict[str, Any]) -> Any:
    """A handler whose first call fails with a 500 and the others answer ``response``."""
    calls = iter([client_error("InternalError", "An internal error has occurred.")])

    def handler(*_: Any) -> dict[str, Any]:
        error = next(calls, None)
        if error is not None:
            raise error
        return response

    return handler


def test_a_mutating_call_without_idempotency_is_not_resent_after_an_unknown_outcome() -> None:
    harness = Harness(FakeAws(lost_once({})))
    call = Call("ec2", "AttachVolume", {"VolumeId": "vol-1", "InstanceId": "i-1",
                                        "Device": "xvdf"})

    [(_, error)] = harness.run((one(call), caller_for("i-1")))

    assert isinstance(error, OutcomeUnknown)
    assert str(error) == ("AttachVolume outcome unknown (InternalError: An internal error has "
                          "occurred.)")
    assert harness.aws.count("AttachVolume") == 1 and not harness.of(ApiRetrying)
    [event] = harness.of(ApiOutcomeUnknown)
    assert (event.api, event.code, event.targets) == (
        "ec2:AttachVolume", "InternalError", ("default/us-east-1/i-1",))
    # Journaled as sent with an unknown outcome, not as failed.
    [record] = harness.journal.calls("run-1")
    assert (record.operation, record.status) == ("AttachVolume", "unknown")


@pytest.mark.parametrize(("call", "sends"), [
    (stop("i-1"), 2),  # stopping a stopping instance changes nothing: resent
    (Call("ec2", "RunInstances", {"ImageId": "ami-1", "MinCount": 1, "MaxCount": 1,
                                  "ClientToken": "run-1:i-1"}), 2),  # its token makes it so
    (Call("ec2", "RunInstances", {"ImageId": "ami-1", "MinCount": 1, "MaxCount": 1}), 1),
])
def test_a_call_safe_to_repeat_is_resent_after_an_unknown_outcome(call: Call,
                                                                    sends: int) -> None:
    harness = Harness(FakeAws(lost_once({"Instances": []})))

    [(_, error)] = harness.run((one(call), caller_for("i-1")))

    assert harness.aws.count(call.operation) == sends
    if sends == 2:
        assert error is None and [r.code for r in harness.of(ApiRetrying)] == ["InternalError"]
    else:
        assert isinstance(error, OutcomeUnknown)


def test_a_resendable_call_still_failing_with_5xx_after_its_retries_is_an_unknown_outcome(
        ) -> None:
    # Every send may have taken effect: not a failure of the step, a state to reconcile.
    def handler(*_: Any) -> dict[str, Any]:
        raise client_error("InternalError", "An internal error has occurred.")

    harness = Harness(FakeAws(handler), retry=RetryPolicy(max_attempts=3))

    [(_, error)] = harness.run((one(stop("i-1")), caller_for("i-1")))

    assert isinstance(error, OutcomeUnknown)
    assert error.operation == "StopInstances"
    assert harness.aws.count("StopInstances") == 3
    assert [r.attempt for r in harness.of(ApiRetrying)] == [1, 2]
    [event] = harness.of(ApiOutcomeUnknown)
    assert (event.api, event.targets) == ("ec2:StopInstances", ("default/us-east-1/i-1",))
    assert [r.status for r in harness.journal.calls("run-1")] == ["unknown"] * 3


def test_fatal_errors_are_not_retried() -> None:
    def handler(*_: Any) -> dict[str, Any]:
        raise client_error("IncorrectInstanceState", "The instance is not in a valid state")

    harness = Harness(FakeAws(handler))

    [(_, error)] = harness.run(one(Call("ec2", "DetachVolume", {"VolumeId": "vol-1"})))

    assert str(error) == "IncorrectInstanceState: The instance is not in a valid state"
    assert harness.aws.count("DetachVolume") == 1 and not harness.of(ApiRetrying)


def no_capacity(*_: Any) -> dict[str, Any]:
    raise client_error("InsufficientInstanceCapacity", "We currently do not have sufficient "
                       "m5.large capacity in the Availability Zone you requested (us-east-1a).")


def test_no_capacity_is_retried_on_its_own_budget_and_is_not_an_unknown_outcome() -> None:
    harness = Harness(FakeAws(no_capacity),
                      retry=RetryPolicy(capacity_attempts=3, capacity_delays=(30.0, 60.0)))
    call = Call("ec2", "RunInstances", {"ImageId": "ami-1", "MinCount": 1, "MaxCount": 1})

    [(_, error)] = harness.run((one(call), caller_for("i-1")))

    assert isinstance(error, AwsError) and not isinstance(error, OutcomeUnknown)
    assert error.code == "InsufficientInstanceCapacity"
    assert harness.aws.count("RunInstances") == 3
    assert [r.delay for r in harness.of(ApiRetrying)] == [30.0, 60.0]
    assert not harness.of(ApiOutcomeUnknown)
    assert [r.status for r in harness.journal.calls("run-1")] == ["error"] * 3


def test_an_error_the_caller_handles_is_handed_back_at_once() -> None:
    harness = Harness(FakeAws(no_capacity))
    call = Call("ec2", "StartInstances", {"InstanceIds": ["i-1"]}, batch_key="InstanceIds",
                handles=frozenset({"InsufficientInstanceCapacity"}))

    [(_, error)] = harness.run((one(call), caller_for("i-1")))

    assert isinstance(error, AwsError) and error.code == "InsufficientInstanceCapacity"
    assert harness.aws.count("StartInstances") == 1 and not harness.of(ApiRetrying)


def test_a_merged_call_failing_for_one_id_is_resent_per_target() -> None:
    def handler(service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if "i-bad" in params["InstanceIds"]:
            raise client_error("UnsupportedOperation", "i-bad is a one-time Spot instance")
        return stopping(service, operation, params)

    harness = Harness(FakeAws(handler))

    results = harness.run(one(stop("i-1")), one(stop("i-bad")), one(stop("i-2")))

    assert [r.params["InstanceIds"] for r in harness.aws.of("StopInstances")] == [
        ["i-1", "i-bad", "i-2"], ["i-1"], ["i-bad"], ["i-2"]]
    assert results[0][0] == {"StoppingInstances": [{"InstanceId": "i-1"}],
                             "ResponseMetadata": {"RequestId": "req-StopInstances"}}
    assert str(results[1][1]) == "UnsupportedOperation: i-bad is a one-time Spot instance"
    assert results[2][1] is None
    [notice] = harness.of(Notice)
    assert notice.message == ("ec2:StopInstances for 3 targets failed (UnsupportedOperation); "
                              "sending it once per target to find which one it is about")


def test_a_dry_run_refuses_every_mutating_call_before_it_leaves() -> None:
    harness = Harness(FakeAws(stopping), dry_run=True)

    results = harness.run(one(stop("i-1")), one(Call("ec2", "DescribeVolumes", {})))

    assert isinstance(results[0][1], MutationRefused)
    assert str(results[0][1]) == ("dry run: refused to send ec2:StopInstances, which mutates "
                                  "(for default/us-east-1/t0)")
    assert results[1][1] is None
    assert [r.operation for r in harness.aws.requests] == ["DescribeVolumes"]
    assert harness.calls.refused == 1


def test_an_operation_missing_from_apis_fails_the_step() -> None:
    harness = Harness(FakeAws(stopping))

    [(_, error)] = harness.run(one(Call("ec2", "DeleteVolume", {"VolumeId": "vol-1"})))

    assert isinstance(error, StepFailed)
    assert str(error) == ("ec2.DeleteVolume is not in remediate.aws.apis.OPERATIONS: "
                          "remediate does not know how to pace it")
    assert harness.aws.requests == []


def test_the_intent_is_on_disk_before_the_request_leaves(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    seen: list[list[tuple[str, str, str]]] = []

    def handler(service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        # Another connection (another process, after a crash) sees the committed intent.
        with sqlite3.connect(path) as other:
            seen.append(other.execute(
                "SELECT target_key, operation, status FROM calls").fetchall())
        return stopping(service, operation, params)

    harness = Harness(FakeAws(handler), journal=Journal(path))

    harness.run((one(stop("i-1")), caller_for("i-1", "stop")))

    assert seen == [[("default/us-east-1/i-1", "StopInstances", "sent")]]
    [call] = harness.journal.calls("run-1")
    assert (call.step_id, call.status, call.request_id) == ("stop", "ok", "req-StopInstances")
    assert call.params == {"InstanceIds": ["i-1"]}


def test_each_merged_requester_gets_its_own_journal_entry() -> None:
    harness = Harness(FakeAws(stopping))

    harness.run((one(stop("i-1")), caller_for("i-1", "stop")),
                (one(stop("i-2")), caller_for("i-2", "stop")))

    calls = harness.journal.calls("run-1")
    assert [(c.target_key, c.params, c.status) for c in calls] == [
        ("default/us-east-1/i-1", {"InstanceIds": ["i-1"]}, "ok"),
        ("default/us-east-1/i-2", {"InstanceIds": ["i-2"]}, "ok")]
    assert harness.calls.mutated == {"default/us-east-1/i-1", "default/us-east-1/i-2"}
    assert harness.aws.count("StopInstances") == 1


def test_a_call_may_ask_to_be_reconciled_rather_than_resent() -> None:
    # A claim tag is read back anyway: its write is not resent through a string of 5xx.
    harness = Harness(FakeAws(lost_once({})))
    call = Call("ec2", "CreateTags", {"Resources": ["i-1"], "Tags": [{"Key": "k", "Value": "v"}]},
                on_unknown="reconcile")

    [(_, error)] = harness.run((one(call), caller_for("i-1")))

    assert isinstance(error, OutcomeUnknown)
    assert harness.aws.count("CreateTags") == 1 and not harness.of(ApiRetrying)
