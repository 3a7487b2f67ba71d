"""`remediate sandbox serve --stepfunctions`: rehearse `run --engine stepfunctions` from
another shell. moto's interpreter runs the execution inside the server process, and its
aws-sdk Tasks must call that same server (moto sends them to localhost:$MOTO_PORT)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cli_support import REBOOT_FIRST, status_ok
from e2e_support import remediate, start_server
from remediate.cli.sandbox import SANDBOX_ROLE

CLOCK_FACTOR = 200.0


@pytest.mark.slow
def test_a_step_functions_run_against_a_sandbox_server_fixes_the_fleet(tmp_path: Path) -> None:
    server = start_server(
        [sys.executable, "-m", "remediate", "sandbox", "serve", "--json", "--port", "0",
         "--fleet", "0", "--workspaces", "0", "--no-pitfalls", "--stepfunctions",
         "--clock-factor", str(CLOCK_FACTOR)], tmp_path / "server.log",
        clock_factor=CLOCK_FACTOR)
    try:
        ec2 = server.client("ec2")
        broken = [i for i in server.instance_ids if not status_ok(ec2, i)]
        assert len(broken) == 4  # the reboot-fixable ones, in a boot loop

        run = remediate(["run", REBOOT_FIRST, "--engine", "stepfunctions", "--role-arn",
                         SANDBOX_ROLE, "--yes", "--no-progress", "--report",
                         f"json:{tmp_path / 'run.json'}"], server.env(tmp_path),
                        tmp_path / "run.log")

        assert run.finish(300) == 0, run.stderr()[-3000:]
        report = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
        assert {t["id"]: t["status"] for t in report["targets"]} == dict.fromkeys(
            broken, "succeeded")
        assert [i for i in server.instance_ids if not status_ok(ec2, i)] == []
        executions = server.client("stepfunctions").list_executions(
            stateMachineArn="arn:aws:states:us-east-1:123456789012:stateMachine:"
                            "ec2-reboot-first")["executions"]
        assert [e["status"] for e in executions] == ["SUCCEEDED"] * len(executions) != []
    finally:
        server.stop()
