"""A resumed run's reports describe the whole run: the journal's targets first, then
this process's events (issue 13, section 4)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from remediate.actions.contract import Target
from remediate.executor.events import (
    Event,
    JournaledStep,
    RunFinished,
    RunResumed,
    RunStarted,
    StepFinished,
    StepStarted,
    TargetFinished,
    TargetRestarted,
    TargetResumed,
    TargetStarted,
)
from remediate.findings import Finding
from remediate.reporters.json_report import JsonReport
from remediate.reporters.junit import JunitReport
from remediate.reporters.markdown import MarkdownReport
from remediate.reporters.record import RunRecord

T0 = datetime(2024, 7, 19, 5, 30, tzinfo=UTC)
FIXED, REFUSED, RESTARTED, MIDWAY = (Target("ec2-instance", i, "us-east-1")
                                     for i in ("i-fixed", "i-ref", "i-again", "i-mid"))
BLOCKED = Finding("stop-protection", "DisableApiStop is set")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def done(step_id: str, start: float, end: float, status: str = "succeeded",
         rollback: bool = False) -> JournaledStep:
    return JournaledStep(step_id, f"ec2.{step_id}", status, 1, at(start), at(end), None,
                         rollback)


def resumed_events(this_start: datetime) -> list[Event]:
    """Run run-1 started at 0 s, was killed, and is resumed at ``this_start``."""
    return [
        RunStarted("run-1", "ec2-offline-repair", False, this_start,
                   (FIXED, REFUSED, RESTARTED, MIDWAY), ("stop", "start")),
        RunResumed("run-1", at(0), 2),
        TargetResumed(FIXED, "done", "succeeded", None, {"state": "running"}, (),
                      (done("stop", 1, 60), done("start", 60, 180))),
        TargetResumed(REFUSED, "done", "refused", "stop-protection: DisableApiStop is set",
                      {"state": "running"}, (BLOCKED,), ()),
        TargetResumed(RESTARTED, "restart", "interrupted",
                      "interrupted by the operator before step start; rolled back", {}, (),
                      (done("stop", 1, 60), done("put_back", 61, 90, rollback=True))),
        TargetResumed(MIDWAY, "steps", None, None, {}, (),
                      (done("stop", 2, 61), JournaledStep("start", "ec2.start", "running", 1,
                                                          at(61), None))),
        TargetStarted(RESTARTED),
        TargetRestarted(RESTARTED, "rolled back"),
        StepStarted(RESTARTED, "stop", "ec2.stop", 1, at(3600)),
        StepFinished(RESTARTED, "stop", "ec2.stop", "succeeded", 1, at(3600), at(3660)),
        StepStarted(RESTARTED, "start", "ec2.start", 1, at(3660)),
        StepFinished(RESTARTED, "start", "ec2.start", "succeeded", 1, at(3660), at(3700)),
        TargetFinished(RESTARTED, "succeeded"),
        TargetStarted(MIDWAY),
        StepStarted(MIDWAY, "start", "ec2.start", 2, at(3600)),
        StepFinished(MIDWAY, "start", "ec2.start", "succeeded", 2, at(3600), at(3650)),
        TargetFinished(MIDWAY, "succeeded"),
        RunFinished("run-1", at(3700), {"succeeded": 3, "refused": 1}),
    ]


def record_of(events: list[Event]) -> RunRecord:
    record = RunRecord()
    for event in events:
        record(event)
    return record


def test_every_report_of_a_resumed_run_describes_the_whole_run() -> None:
    record = record_of(resumed_events(at(3600)))

    report = json.loads(JsonReport("-").render(record))
    assert report["started_at"] == "2024-07-19T05:30:00Z"  # when the run began
    assert {t["id"]: t["status"] for t in report["targets"]} == {
        "i-fixed": "succeeded", "i-ref": "refused", "i-again": "succeeded",
        "i-mid": "succeeded"}
    assert report["summary"] == {"succeeded": 3, "failed": 0, "skipped": 0, "rolled_back": 0,
                                 "refused": 1, "interrupted": 0, "not_run": 0, "total": 4,
                                 "interrupted_rolled_back": 0}
    steps = {t["id"]: [(s["id"], s["status"], s["rollback"]) for s in t["steps"]]
             for t in report["targets"]}
    assert steps == {
        "i-fixed": [("stop", "succeeded", False), ("start", "succeeded", False)],
        "i-ref": [],
        # Started again: the rolled-back attempt's steps are not this one's.
        "i-again": [("stop", "succeeded", False), ("start", "succeeded", False)],
        "i-mid": [("stop", "succeeded", False), ("start", "succeeded", False)]}
    [refused] = [t for t in report["targets"] if t["id"] == "i-ref"]
    assert refused["findings"] == [{"kind": "stop-protection", "severity": "block",
                                    "detail": "DisableApiStop is set"}]

    markdown = MarkdownReport("-").render(record)
    assert "**4 targets: 3 fixed, 1 refused.**" in markdown

    suite = ET.fromstring(JunitReport("-").render(record)).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "1", "0")
    assert suite.get("timestamp") == "2024-07-19T05:30:00"


def test_a_target_waiting_to_start_again_shows_the_attempt_it_was_rolled_back_from() -> None:
    events = resumed_events(at(3600))
    cut = next(i for i, e in enumerate(events) if isinstance(e, TargetStarted))
    record = record_of([*events[:cut], RunFinished("run-1", at(3600), {})])

    report = json.loads(JsonReport("-").render(record))

    [again] = [t for t in report["targets"] if t["id"] == "i-again"]
    assert (again["status"], again["error"], again["rolled_back"]) == (
        "interrupted", "interrupted by the operator before step start; rolled back", True)
    # Each target once: the one put back counts as interrupted, and says it was rolled back.
    assert {k: report["summary"][k] for k in ("interrupted", "interrupted_rolled_back",
                                               "failed", "rolled_back")} == {
        "interrupted": 2, "interrupted_rolled_back": 1, "failed": 0, "rolled_back": 0}
    assert [(s["id"], s["rollback"]) for s in again["steps"]] == [
        ("stop", False), ("put_back", True)]
    [mid] = [t for t in report["targets"] if t["id"] == "i-mid"]
    # Never reached by this process: it was mid-way, its in-flight step cut off.
    assert mid["status"] == "interrupted"
    assert [(s["id"], s["status"]) for s in mid["steps"]] == [
        ("stop", "succeeded"), ("start", "interrupted")]
