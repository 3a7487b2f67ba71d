from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from remediate.actions.contract import Target
from remediate.executor.events import (
    BudgetExhausted,
    Event,
    EventBus,
    Interrupted,
    RunStarted,
    StepStarted,
    TargetStarted,
)
from remediate.reporters.record import RunRecord, iso
from remediate.reporters.subscriber import Subscriber, handler_name


def record_of(events: list[Event]) -> RunRecord:
    record = RunRecord()
    for event in events:
        record(event)
    return record


def step(sid: str, action: str, status: str, start: str, end: str, attempts: int = 1,
         error: str | None = None, rollback: bool = False) -> dict[str, Any]:
    return {"id": sid, "action": action, "status": status, "attempts": attempts,
            "started_at": f"2024-07-19T05:{start}Z", "finished_at": f"2024-07-19T05:{end}Z",
            "error": error, "rollback": rollback}


def target(tid: str, status: str, steps: list[dict[str, Any]], region: str = "us-east-1",
           findings: tuple[tuple[str, str, str], ...] = (), facts: dict[str, Any] | None = None,
           **extra: Any) -> dict[str, Any]:
    return {"id": tid, "region": region, "status": status,
            "findings": [{"kind": k, "severity": s, "detail": d} for k, s, d in findings],
            "steps": steps, "account": "default", "kind": "ec2-instance",
            "error": extra.get("error"), "refused": extra.get("refused"),
            "rollback_reason": extra.get("rollback_reason"),
            "rolled_back": status == "rolled_back",
            "facts": facts if facts is not None else {"state": "running"},
            "planned": extra.get("planned", [])}


def test_a_run_with_every_outcome_is_recorded_exactly(events: list[Event]) -> None:
    record = record_of(events)
    refused = "stop-protection: DisableApiStop is set"
    assert record.as_dict() == {
        "run_id": "run-1",
        "playbook": "ec2-offline-repair",
        "dry_run": False,
        "started_at": "2024-07-19T05:30:00Z",
        "finished_at": "2024-07-19T05:46:40Z",
        "summary": {"succeeded": 1, "failed": 1, "skipped": 1, "rolled_back": 1, "refused": 1,
                    "interrupted": 0, "not_run": 0, "total": 5, "interrupted_rolled_back": 0},
        "targets": [
            target("i-ok", "succeeded", [
                step("stop", "ec2.stop", "succeeded", "30:01", "31:01"),
                step("start", "ec2.start", "succeeded", "31:01", "33:01"),
            ], facts={"state": "running", "status": "impaired"}),
            target("i-bad", "failed", [
                step("stop", "ec2.stop", "failed", "30:01", "30:20", attempts=2,
                     error="IncorrectInstanceState: not stoppable now"),
            ], findings=(("public-ip-will-change", "info", "54.0.0.1 is not an Elastic IP"),),
                error="step stop failed"),
            target("i-rb", "rolled_back", [
                step("stop", "ec2.stop", "succeeded", "30:02", "31:02"),
                step("start", "ec2.start", "failed", "31:02", "46:02",
                     error="timed out after 900s waiting for instance i-rb running"),
                step("reattach", "ec2.attach-volume", "succeeded", "46:02", "46:32",
                     rollback=True),
            ], region="eu-west-1", error="step start failed",
                rollback_reason="step start failed"),
            target("i-ref", "refused", [],
                   findings=(("stop-protection", "block", "DisableApiStop is set"),),
                   error=refused, refused=refused),
            target("i-skip", "skipped", [
                step("stop", "ec2.stop", "skipped", "30:03", "30:03", attempts=0),
            ], findings=(("already-healthy", "info", "status checks pass"),),
                facts={"state": "running", "status": "ok"}, error="already healthy"),
        ],
        "steps": ["stop", "start"],
        "estimate_seconds": None,
        "forecast": None,  # dry runs only
        "retries": {"steps": 1, "api": 2, "throttled": 1, "unknown_outcomes": 0,
                        "reconciled": 0},
        "notices": [{"level": "warning",
                     "message": "rescue pool in us-east-1a used 2 instances"}],
        "budget_exhausted": None,
        "interrupted": False,
        "stopped_by_alarm": None,
        "permissions": [],  # dry runs only
    }
    assert record.closed
    assert record.failures == 0  # the unknown event type was ignored, not an error


def test_a_dry_run_plans_and_refuses_but_nothing_succeeds(dry_events: list[Event]) -> None:
    report = record_of(dry_events).as_dict()
    assert report["summary"] == {"succeeded": 0, "failed": 0, "skipped": 0, "rolled_back": 0,
                                 "refused": 1, "interrupted": 0, "not_run": 1, "total": 2,
                                 "interrupted_rolled_back": 0}
    assert report["estimate_seconds"] == 754.0
    planned, refused = report["targets"]
    assert (planned["status"], refused["status"]) == ("planned", "refused")
    assert planned["steps"] == []
    assert planned["facts"] == {"state": "running", "instance_type": "m5.large"}
    assert planned["planned"] == [
        {"step": "stop", "action": "ec2.stop",
         "calls": ["ec2:StopInstances", "ec2:DescribeInstances"], "skip": None,
         "mutating": True, "condition": None},
        {"step": "start", "action": "ec2.start", "calls": ["ec2:StartInstances"],
         "skip": "already running", "mutating": True, "condition": None},
    ]
    assert refused["refused"] == "stop-protection: DisableApiStop is set"
    assert refused["planned"] == []


def test_a_run_cut_short_settles_on_close() -> None:
    a, b, c = (Target("workspace", f"ws-{n}", "us-west-2") for n in "abc")
    t0 = datetime(2024, 7, 19, 6, 0, tzinfo=UTC)
    record = record_of([
        RunStarted("run-3", "workspaces-recover", False, t0, (a, b, c), ("reboot",)),
        TargetStarted(a),
        StepStarted(a, "reboot", "workspaces.reboot", 1, t0),
        BudgetExhausted(failed=3, allowed=2),
        Interrupted(in_flight=("ws-a",)),
    ])
    assert not record.closed
    record.close()
    report = record.as_dict()
    assert [t["status"] for t in report["targets"]] == ["interrupted", "pending", "pending"]
    assert report["targets"][0]["steps"] == [{
        "id": "reboot", "action": "workspaces.reboot", "status": "interrupted", "attempts": 1,
        "started_at": "2024-07-19T06:00:00Z", "finished_at": None, "error": None,
        "rollback": False}]
    # Each target counted once: the interrupted one is not also a failure.
    assert report["summary"] == {"succeeded": 0, "failed": 0, "skipped": 0, "rolled_back": 0,
                                 "refused": 0, "interrupted": 1, "not_run": 2, "total": 3,
                                 "interrupted_rolled_back": 0}
    assert report["finished_at"] is None
    assert report["budget_exhausted"] == {"failed": 3, "allowed": 2}
    assert report["interrupted"] is True


def test_the_model_is_json_serialisable(events: list[Event]) -> None:
    text = json.dumps(record_of(events).as_dict())
    assert json.loads(text)["targets"][0]["id"] == "i-ok"


def test_reports_are_written_once_and_a_failing_writer_does_not_stop_the_others(
        events: list[Event]) -> None:
    written: list[str] = []

    def broken(_record: RunRecord) -> None:
        raise OSError("disk full")

    record = RunRecord()
    record.writers += [broken, lambda r: written.append(r.run_id)]
    for event in events:
        record(event)
    record.close()
    assert written == ["run-1"]
    assert record.failures == 1


class Exploding(Subscriber):
    def on_run_started(self, event: RunStarted) -> None:
        raise RuntimeError("boom")


def test_a_reporter_that_raises_does_not_stop_the_others(events: list[Event]) -> None:
    bus = EventBus()
    exploding = Exploding()
    record = RunRecord()

    def raw(_event: Event) -> None:
        raise ValueError("not a Subscriber: the bus catches this one")

    for handler in (raw, exploding, record):
        bus.subscribe(handler)
    for event in events:
        bus.publish(event)
    assert exploding.failures == 1
    assert bus.failures == len(events)
    assert record.as_dict()["summary"]["total"] == 5
    assert record.closed


@pytest.mark.parametrize(("name", "expected"), [
    ("RunStarted", "on_run_started"),
    ("ApiRetrying", "on_api_retrying"),
    ("Notice", "on_notice"),
])
def test_handler_names(name: str, expected: str) -> None:
    assert handler_name(name) == expected


def test_iso_is_utc_with_z() -> None:
    naive = datetime(2024, 7, 19, 5, 30, 1, 999)
    assert iso(naive) == "2024-07-19T05:30:01Z"
    assert iso(datetime(2024, 7, 19, 7, 30, tzinfo=timezone(timedelta(hours=2)))) == (
        "2024-07-19T05:30:00Z")
    assert iso(None) is None
