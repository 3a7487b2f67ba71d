"""`remediate run --stop-on-alarm NAME` and `iam-policy --stop-on-alarm NAME` on the sandbox.

What the alarm does to a run is tested in tests/executor/test_stop_on_alarm.py; here,
the command's checks before anything starts, its exit code, and the policy it needs.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_support import REBOOT_FIRST, CliSandbox, cli_sandbox, run_cli, sns_inbox
from remediate.actions.contract import Target
from remediate.aws.clients import ClientFactory
from remediate.cli import launch
from remediate.cli.alarms import watch_alarms
from remediate.cli.launch import exit_code, lookup
from remediate.executor.engine import Executor
from remediate.executor.events import EventBus, StepStarted, TargetFinished
from remediate.executor.result import RunResult
from remediate.journal import Journal
from remediate.language.loader import bind_params, load_file
from remediate.permissions import policy_document
from remediate.sandbox import FleetSpec

ALARM = "fleet-5xx"


@pytest.fixture
def fleet(monkeypatch: pytest.MonkeyPatch) -> Iterator[CliSandbox]:
    with cli_sandbox(monkeypatch, FleetSpec(plain=0, reboot_fixable=2, azs=1)) as cli:
        cli.sandbox.client("cloudwatch").put_metric_alarm(
            AlarmName=ALARM, MetricName="5XXError", Namespace="AWS/ApplicationELB",
            Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=50.0,
            ComparisonOperator="GreaterThanThreshold")
        cli.sandbox.reset_api_calls()
        yield cli


def reboot(tmp_path: Path, *options: str) -> int:
    return run_cli("run", REBOOT_FIRST, "--yes", "--no-progress",
                   "--journal", str(tmp_path / "j.sqlite"), *options)


def refused(fleet: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str],
            *options: str) -> str:
    """The one-line error of a run (or ``resume ...``) refused (exit 1) before any change."""
    code = run_cli(*options) if options[0] == "resume" else reboot(tmp_path, *options)
    assert code == 1
    assert fleet.mutating_calls() == []
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_an_alarm_that_does_not_exist_is_refused_before_anything_changes(
        fleet: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert refused(fleet, tmp_path, capsys, "--stop-on-alarm", ALARM,
                   "--stop-on-alarm", "fleet-5XX") == (
        "error: --stop-on-alarm fleet-5XX: no CloudWatch alarm of that name in "
        "default/us-east-1 (DescribeAlarms); check the name (it is case-sensitive) with "
        "`aws cloudwatch describe-alarms --alarm-names fleet-5XX`")


def test_stepfunctions_runs_are_not_watched_and_say_so(
        fleet: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert refused(fleet, tmp_path, capsys, "--stop-on-alarm", ALARM,
                   "--engine", "stepfunctions") == (
        "error: --stop-on-alarm works with the local engine only: a Step Functions "
        "execution is not watched from here")


def policy(stop_on_alarm: bool) -> dict[str, Any]:
    loaded = load_file(REBOOT_FIRST)
    assert loaded.playbook is not None
    return policy_document(loaded.playbook, stop_on_alarm=stop_on_alarm)


def test_the_policy_allows_reading_alarms_only_when_the_run_watches_one(
        fleet: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("iam-policy", REBOOT_FIRST, "--stop-on-alarm", ALARM) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == policy(stop_on_alarm=True)
    assert {"Sid": "RemediateCloudwatch", "Effect": "Allow",
            "Action": ["cloudwatch:DescribeAlarms"], "Resource": "*"} in printed["Statement"]
    assert "cloudwatch" not in json.dumps(policy(stop_on_alarm=False))

    # Under the policy without it, the run cannot read the alarm and starts nothing.
    fleet.sandbox.enforce_policy(policy(stop_on_alarm=False))
    assert refused(fleet, tmp_path, capsys, "--stop-on-alarm", ALARM).startswith(
        "error: --stop-on-alarm: could not read CloudWatch alarms in default/us-east-1 "
        "(DescribeAlarms): An error occurred (AccessDenied")

    # Under the policy with it, the run watches the alarm (OK) and fixes every target.
    fleet.sandbox.enforce_policy(policy(stop_on_alarm=True))
    assert reboot(tmp_path, "--stop-on-alarm", ALARM) == 0
    assert any(call.operation == "DescribeAlarms" for call in fleet.sandbox.api_calls)


def test_a_run_stopped_by_an_alarm_exits_2() -> None:
    stopped = RunResult("r", False, {"default/us-east-1/i-1": "succeeded",
                                     "default/us-east-1/i-2": "skipped"},
                        stopped_by_alarm="alarm a (default/us-east-1) is in ALARM")
    assert exit_code(stopped) == 2


def test_resume_watches_the_alarms_of_the_run_it_continues(
        fleet: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A run given --stop-on-alarm and stopped by Ctrl-C: `resume` checks the alarm again
    (in ALARM: it starts nothing) and watches it while it runs."""
    loaded = load_file(REBOOT_FIRST)
    assert loaded.playbook is not None
    factory = ClientFactory(session=fleet.sandbox.boto3_session())
    bus = EventBus()
    journal = tmp_path / "j.sqlite"
    targets = [Target("ec2-instance", i, "us-east-1") for i in fleet.fleet.instance_ids()]
    executor = Executor(loaded.playbook, targets, clients=lookup(factory), clock=fleet.clock,
                        bus=bus, journal=Journal(journal), run_id="run-r",
                        params=bind_params(loaded.playbook, {})[0],
                        alarms=watch_alarms([ALARM], targets, factory, fleet.clock))
    bus.subscribe(lambda e: executor.request_stop() if isinstance(e, StepStarted) else None)
    result = executor.run()
    assert result.interrupted, result.errors
    cloudwatch = fleet.sandbox.client("cloudwatch")
    cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="5xx up")
    fleet.sandbox.reset_api_calls()

    assert refused(fleet, tmp_path, capsys, "resume", str(journal)) == (
        f"error: --stop-on-alarm {ALARM}: the alarm is in ALARM already in default/us-east-1 "
        "(5xx up); nothing was started: try again once it is OK")

    cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="OK", StateReason="fine")
    assert run_cli("resume", str(journal), "--no-progress") == 0
    assert any(call.operation == "DescribeAlarms" for call in fleet.sandbox.api_calls)


def test_a_run_stopped_by_an_alarm_says_so_on_the_console_and_in_every_report(
        fleet: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The alarm goes off when the first target finishes (concurrency 1): the second is
    never started, and every output says why, as not started rather than failed."""
    cloudwatch = fleet.sandbox.client("cloudwatch")
    wired = launch.subscribers

    def subscribers(*args: Any, **kwargs: Any) -> Any:
        bus = wired(*args, **kwargs)
        bus.subscribe(lambda e: cloudwatch.set_alarm_state(
            AlarmName=ALARM, StateValue="ALARM", StateReason="5xx up")
            if isinstance(e, TargetFinished) else None)
        return bus

    monkeypatch.setattr(launch, "subscribers", subscribers)
    reports = {fmt: tmp_path / f"run.{fmt}" for fmt in ("json", "junit", "md", "html")}
    inbox = sns_inbox(fleet.sandbox)

    code = reboot(tmp_path, "--stop-on-alarm", ALARM, "--concurrency", "1",
                  *(f"--report={fmt}:{path}" for fmt, path in reports.items()),
                  "--notify", f"sns:{inbox.topic_arn}")

    assert code == 2
    why = f"alarm {ALARM} (default/us-east-1) is in ALARM: 5xx up"
    # Read before the second batch: it starts nothing.
    assert f"{why}: no new targets will start; 0 targets in flight will finish" in (
        capsys.readouterr().err.splitlines())
    data = json.loads(reports["json"].read_text(encoding="utf-8"))
    assert data["stopped_by_alarm"]["alarm"] == ALARM
    [left] = [t for t in data["targets"] if t["status"] != "succeeded"]
    assert (left["status"], left["error"], left["steps"]) == (
        "skipped", f"not started: {why}", [])
    assert data["summary"]["failed"] == 0
    [skipped] = ET.parse(reports["junit"]).getroot().iter("skipped")
    assert skipped.get("message") == f"skipped: not started: {why}"
    assert f"**Stopped by alarm {ALARM}**" in reports["md"].read_text(encoding="utf-8")
    assert f"Stopped by alarm {ALARM} (default/us-east-1) is in ALARM: 5xx up" in (
        reports["html"].read_text(encoding="utf-8"))
    notes = inbox.messages()
    [(subject, note)] = [m for m in notes if m[0].startswith("remediate stopped by alarm")]
    assert subject == f"remediate stopped by alarm {ALARM}: {REBOOT_FIRST}"[:100]
    assert (note["alarm"], note["reason"], note["in_flight"]) == (ALARM, "is in ALARM: 5xx up", 0)
