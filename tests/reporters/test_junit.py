from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from remediate.actions.contract import Target
from remediate.executor.events import Event, RunFinished, RunStarted, TargetFinished
from remediate.reporters.junit import JunitReport
from remediate.reporters.record import RunRecord


def parse(events: list[Event]) -> ET.Element:
    record = RunRecord()
    for event in events:
        record(event)
    return ET.fromstring(JunitReport("unused").render(record))


def test_one_suite_per_run_one_case_per_target(events: list[Event]) -> None:
    root = parse(events)
    assert root.tag == "testsuites"
    (suite,) = root
    # Refused counts as a failure (the run exits 2): failed, rolled back, refused.
    assert suite.attrib == {"name": "ec2-offline-repair", "tests": "5", "failures": "3",
                            "errors": "0", "skipped": "1", "time": "1000.000",
                            "timestamp": "2024-07-19T05:30:00"}
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props == {"run_id": "run-1", "dry_run": "false"}
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert list(cases) == ["i-ok", "i-bad", "i-rb", "i-ref", "i-skip"]
    assert cases["i-rb"].get("classname") == "default.eu-west-1"
    assert cases["i-ok"].get("time") == "180.000"
    assert [child.tag for child in cases["i-ok"]] == ["system-out"]


def test_failures_and_skips_say_why(events: list[Event]) -> None:
    cases = {case.get("name"): case for case in parse(events).iter("testcase")}
    failure = cases["i-bad"].find("failure")
    assert failure is not None
    assert failure.attrib == {"type": "failed", "message": "stop (ec2.stop): failed after 2 "
                              "attempts in 19s: IncorrectInstanceState: not stoppable now"}
    rolled = cases["i-rb"].find("failure")
    assert rolled is not None
    assert rolled.attrib == {"type": "rolled_back", "message": "rolled back: step start failed"}
    assert cases["i-ref"].find("skipped") is None
    refused = cases["i-ref"].find("failure")
    assert refused is not None
    assert refused.attrib == {"type": "refused",
                              "message": "stop-protection: DisableApiStop is set"}
    skipped = cases["i-skip"].find("skipped")
    assert skipped is not None
    assert skipped.get("message") == "skipped: already healthy"


def test_the_step_log_is_in_system_out(events: list[Event]) -> None:
    cases = {case.get("name"): case for case in parse(events).iter("testcase")}
    assert cases["i-rb"].findtext("system-out") == (
        "stop (ec2.stop): succeeded in 1m\n"
        "start (ec2.start): failed in 15m: timed out after 900s waiting for instance i-rb "
        "running\n"
        "rollback reattach (ec2.attach-volume): succeeded in 30s")
    assert cases["i-bad"].findtext("system-out") == (
        "finding: public-ip-will-change (info): 54.0.0.1 is not an Elastic IP\n"
        "stop (ec2.stop): failed after 2 attempts in 19s: IncorrectInstanceState: not "
        "stoppable now")


def test_a_dry_run_passes_planned_targets_with_the_plan(dry_events: list[Event]) -> None:
    suite = parse(dry_events)[0]
    # The refused one fails: `plan` exits 2 for it, a dashboard must not show green.
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("2", "1", "0")
    planned = suite.find("testcase[@name='i-1']")
    assert planned is not None
    assert planned.find("failure") is None and planned.find("skipped") is None
    assert planned.findtext("system-out") == (
        "finding: public-ip-will-change (info): 54.0.0.1 is not an Elastic IP\n"
        "stop (ec2.stop): would run: ec2:StopInstances, ec2:DescribeInstances\n"
        "start (ec2.start): would skip: already running")


def test_text_xml_cannot_carry_is_replaced() -> None:
    t = Target("ec2-instance", "i-1", "us-east-1")
    now = datetime(2024, 7, 19, tzinfo=UTC)
    suite = parse([RunStarted("r", "p\x00", False, now, (t,), ()),
                   TargetFinished(t, "failed", "bad \x1b[31mbytes"),
                   RunFinished("r", now, {})])[0]
    assert suite.get("name") == "p?"
    failure = suite.find("testcase/failure")
    assert failure is not None
    assert failure.get("message") == "bad ?[31mbytes"
