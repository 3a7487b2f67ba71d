"""The poller: one Describe for many waits, resolution, failures, timeouts, splitting."""

from __future__ import annotations

from typing import Any

import pytest
from executor_support import (
    FakeAws,
    Harness,
    caller_for,
    client_error,
    filter_ids,
    instances_response,
    one,
)

from remediate.actions.requests import Sleep, Wait, WaitFailed, WaitTimeout, observe, wait_state


def test_one_describe_per_chunk_answers_every_wait() -> None:
    harness = Harness(FakeAws(lambda _s, _o, params: instances_response(filter_ids(params))))
    ids = [f"i-{n:03d}" for n in range(250)]

    results = harness.run(*((one(observe("instance", i)), caller_for(i)) for i in ids))

    requests = harness.aws.of("DescribeInstances")
    assert [len(filter_ids(r.params)) for r in requests] == [200, 50]
    assert [result["InstanceId"] for result, _ in results] == ids
    assert harness.clock.now() == 0.0


def test_waits_resolve_when_their_state_is_reached_polling_every_interval() -> None:
    harness = Harness(FakeAws(lambda *_: {}), poll_interval=15.0)
    stopped_at = {"i-1": 40.0, "i-2": 70.0}

    def handler(service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        now = harness.clock.now()
        return {"Reservations": [{"Instances": [
            {"InstanceId": i, "State": {"Name": "stopped" if now >= stopped_at[i] else
                                        "stopping"}} for i in filter_ids(params)]}]}

    harness.aws.handler = handler
    finished: dict[str, float] = {}

    def wait(instance_id: str) -> Any:
        record = yield wait_state("instance", instance_id, "stopped")
        finished[instance_id] = harness.clock.now()
        return record

    harness.run((wait("i-1"), caller_for("i-1")), (wait("i-2"), caller_for("i-2")))

    assert finished == {"i-1": 45.0, "i-2": 75.0}
    # Rounds at 0, 15, 30, 45 (both ids), then 60, 75 (i-2 only).
    assert [len(filter_ids(r.params)) for r in harness.aws.of("DescribeInstances")] == [
        2, 2, 2, 2, 1, 1]


def test_new_waits_are_described_soon_without_waiting_for_the_next_round() -> None:
    harness = Harness(FakeAws(lambda *_: {}), poll_interval=15.0)
    polls: list[tuple[float, list[str]]] = []

    def handler(service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        polls.append((harness.clock.now(), filter_ids(params)))
        return instances_response(filter_ids(params))

    harness.aws.handler = handler
    answered: dict[str, float] = {}

    def wait(instance_id: str, start: float, ready: float) -> Any:
        yield Sleep(start)
        yield Wait("instance", instance_id, until=lambda _r: harness.clock.now() >= ready)
        answered[instance_id] = harness.clock.now()

    harness.run(wait("i-1", 0.0, ready=10.0), wait("i-2", 3.0, ready=0.0))

    assert polls == [(0.0, ["i-1"]), (3.0, ["i-2"]), (15.0, ["i-1"])]
    assert answered == {"i-2": 3.0, "i-1": 15.0}


def test_failed_and_timed_out_waits_say_why() -> None:
    harness = Harness(FakeAws(lambda _s, _o, p: instances_response(filter_ids(p), "stopping")),
                      poll_interval=10.0)

    results = harness.run(
        one(wait_state("instance", "i-1", "stopped", fail_on=("stopping",))),
        one(wait_state("instance", "i-2", "stopped", timeout=25.0)))

    assert isinstance(results[0][1], WaitFailed)
    assert str(results[0][1]) == "instance i-1 stopped: instance is stopping"
    assert isinstance(results[1][1], WaitTimeout)
    assert str(results[1][1]) == "timed out after 25s waiting for instance i-2 stopped"
    assert harness.clock.now() == 30.0


def test_a_chunk_failing_for_one_id_is_described_per_id() -> None:
    def handler(service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        ids = params["InstanceIds"]
        if "i-gone" in ids:
            raise client_error("InvalidInstanceID.Malformed", "Invalid id: i-gone")
        return {"InstanceStatuses": [{"InstanceId": i, "InstanceState": {"Name": "running"},
                                      "InstanceStatus": {"Status": "ok"},
                                      "SystemStatus": {"Status": "ok"}} for i in ids]}

    harness = Harness(FakeAws(handler))

    results = harness.run(one(observe("instance-status", "i-1")),
                          one(observe("instance-status", "i-gone")))

    assert results[0][0]["InstanceStatus"] == {"Status": "ok"}
    assert isinstance(results[1][1], WaitFailed)
    assert str(results[1][1]) == ("read instance-status: could not describe i-gone: "
                                  "InvalidInstanceID.Malformed: Invalid id: i-gone")
    assert [r.params["InstanceIds"] for r in harness.aws.of("DescribeInstanceStatus")] == [
        ["i-1", "i-gone"], ["i-1"], ["i-gone"]]


def test_an_id_aws_does_not_know_reads_as_missing() -> None:
    def handler(service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        raise client_error("InvocationDoesNotExist", "")

    harness = Harness(FakeAws(handler))

    [(record, error)] = harness.run(one(observe("command-invocation", "cmd-1:i-1")))

    assert (record, error) == (None, None)
    assert harness.aws.of("GetCommandInvocation")[0].params == {"CommandId": "cmd-1",
                                                                "InstanceId": "i-1"}


def test_pages_are_followed() -> None:
    def handler(service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if "NextToken" not in params:
            return {"Volumes": [{"VolumeId": "vol-1", "State": "in-use"}], "NextToken": "p2"}
        return {"Volumes": [{"VolumeId": "vol-2", "State": "available"}]}

    harness = Harness(FakeAws(handler))

    results = harness.run(one(observe("volume", "vol-1")), one(observe("volume", "vol-2")))

    assert [r["State"] for r, _ in results] == ["in-use", "available"]
    assert harness.aws.count("DescribeVolumes") == 2


def test_an_unknown_resource_fails_the_wait() -> None:
    harness = Harness(FakeAws(lambda *_: {}))

    [(_, error)] = harness.run(one(Wait("gizmo", "g-1", until=lambda r: True)))

    assert str(error) == "cannot wait for unknown resource 'gizmo'"


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_waits_are_grouped_per_region(region: str) -> None:
    harness = Harness(FakeAws(lambda _s, _o, p: instances_response(filter_ids(p))))

    harness.run((one(observe("instance", "i-1")), caller_for("i-1", region="us-east-1")),
                (one(observe("instance", "i-2")), caller_for("i-2", region=region)))

    assert sorted(r.region for r in harness.aws.of("DescribeInstances")) == sorted(
        {"us-east-1", region})
