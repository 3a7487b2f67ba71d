"""`run --engine stepfunctions` following its execution on moto: throttled calls retried on the
clock; an execution that may still run keeps its targets' leases, and a second run keeps off
those targets until it ends."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_support import REBOOT_FIRST, CliSandbox, cli_sandbox, json_file, run_cli, status_ok
from remediate.clock import Clock, VirtualClock
from remediate.export.moto_engine import MotoStepFunctions
from remediate.sandbox import FleetSpec

ROLE = "arn:aws:iam::123456789012:role/remediate-sfn"
TABLE = "leases"
HOLD = """\
version: 1
name: hold
description: Waits seven minutes on each target (one Wait state), changing nothing.
targets:
  kind: ec2-instance
  tags: {incident: crowdstrike-2024-07-19}
steps:
  - id: hold
    action: control.pause
    with: {duration: 7m}
"""


class HeldWaits(Clock):
    """The executions' clock: a wait of ``seconds`` blocks until :meth:`release` (so the
    execution stays RUNNING in moto meanwhile); other waits are ``clock``'s."""

    def __init__(self, clock: VirtualClock, seconds: float) -> None:
        self.clock = clock
        self.seconds = seconds
        self.released = threading.Event()

    def release(self) -> None:
        self.released.set()

    def now(self) -> float:
        return self.clock.now()

    def wall(self) -> Any:
        return self.clock.wall()

    def sleep_until(self, deadline: float, wake: threading.Event | None = None) -> None:
        self.clock.sleep_until(deadline, wake)

    def sleep(self, seconds: float) -> None:
        if seconds == self.seconds:
            assert self.released.wait(timeout=120), "never released"
        self.clock.sleep(seconds)


@pytest.fixture
def three(monkeypatch: pytest.MonkeyPatch) -> Iterator[CliSandbox]:
    with cli_sandbox(monkeypatch, FleetSpec(plain=0, reboot_fixable=3, azs=2)) as cli, \
            MotoStepFunctions(cli.clock):
        yield cli


def test_a_throttled_follower_retries_on_the_clock_and_the_run_ends_as_usual(
        three: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Before: the first ThrottlingException ended the run with exit 3 (and freed its leases
    # while the execution ran on).
    for operation in ("DescribeExecution", "GetExecutionHistory"):
        three.sandbox.fail(operation, "ThrottlingException", "Rate exceeded", times=2)
    report = tmp_path / "run.json"

    code = run_cli("run", REBOOT_FIRST, "--engine", "stepfunctions", "--role-arn", ROLE,
                   "--yes", "--no-progress", "--report", f"json:{report}")

    assert code == 0, capsys.readouterr().err
    found = json_file(report)
    assert found["retries"] == {"steps": 0, "api": 4, "throttled": 4, "unknown_outcomes": 0,
                                "reconciled": 0}
    assert [t["status"] for t in found["targets"]] == ["succeeded"] * 3
    assert all(status_ok(three.ec2, i) for i in three.fleet.instance_ids())


def lease_items(cli: CliSandbox) -> list[dict[str, Any]]:
    return list(cli.sandbox.client("dynamodb").scan(TableName=TABLE)["Items"])


def test_an_execution_left_running_keeps_a_second_run_off_its_target_until_it_ends(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REMEDIATE_CRASH_DIR", str(tmp_path / "crashes"))
    playbook = tmp_path / "hold.yaml"
    playbook.write_text(HOLD, encoding="utf-8")

    def run(name: str) -> int:
        return run_cli("run", str(playbook), "--engine", "stepfunctions", "--role-arn", ROLE,
                       "--lock-table", TABLE, "--yes", "--no-progress",
                       "--report", f"json:{tmp_path / name}.json")

    with cli_sandbox(monkeypatch, FleetSpec(plain=0, reboot_fixable=1, azs=1)) as cli:
        (instance,) = cli.fleet.instance_ids()
        held = HeldWaits(cli.clock, 420)
        with MotoStepFunctions(held) as engine:
            try:
                # 1. Run A loses track of its execution (DescribeExecution refused past its
                # retries, like a laptop offline): it stops, the execution goes on.
                cli.sandbox.fail("DescribeExecution", "ThrottlingException", "Rate exceeded")
                assert run("a") == 3
                err = capsys.readouterr().err
                cli.sandbox.clear_faults()
                (item,) = lease_items(cli)
                first, arn = item["run_id"]["S"], item["execution_arn"]["S"]
                assert f"run {first}: execution {arn}\n" in err
                assert err.splitlines()[-4:-1] == [
                    f"stopped following; the execution goes on in AWS: {arn} (stop it with "
                    "`aws stepfunctions stop-execution`)",
                    f"kept the leases of 1 target in lock table {TABLE}: execution {arn} may "
                    "still be running, and other runs keep off its targets while it does",
                    "unexpected error: ClientError: An error occurred (ThrottlingException) "
                    "when calling the DescribeExecution operation (reached max retries: 0): "
                    "Rate exceeded"]
                sfn = cli.sandbox.client("stepfunctions")
                assert sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"

                # 2. Its lease expires; run B finds the execution RUNNING and keeps off.
                cli.clock.advance(301)
                assert run("b") == 2, capsys.readouterr().err
                (target,) = json_file(tmp_path / "b.json")["targets"]
                assert (target["status"], target["error"]) == ("refused", (
                    f"default/us-east-1/{instance} is locked by run {first} (pid "
                    f"{os.getpid()} on {socket.gethostname()}, started "
                    f"{item['acquired_at']['S']}) for Step Functions execution {arn}, which "
                    f"is still RUNNING (lock table {TABLE})"))
                assert lease_items(cli) == [item]

                # 3. The execution ends; run C takes the expired lease over and works.
                held.release()
                assert engine.join(timeout=60)
                assert sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED"
                capsys.readouterr()
                assert run("c") == 0, capsys.readouterr().err
                found = json_file(tmp_path / "c.json")
                assert [(t["id"], t["status"]) for t in found["targets"]] == [
                    (instance, "succeeded")]
                assert {"level": "warning", "message": (
                    f"default/us-east-1/{instance}: took over an expired lease of run {first} "
                    f"in lock table {TABLE}")} in found["notices"]
                assert lease_items(cli) == []
            finally:
                held.release()
                engine.join(timeout=60)
