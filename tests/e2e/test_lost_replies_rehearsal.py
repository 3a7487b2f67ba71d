"""`remediate sandbox serve --lose-replies`: rehearse a run while AWS loses replies, from
another shell, as an operator would (real processes, boto3 over HTTP)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cli_support import OFFLINE_REPAIR, backups, status_ok
from e2e_support import remediate, start_server

CLOCK_FACTOR = 200.0


@pytest.mark.slow
def test_an_offline_repair_rehearsed_with_lost_replies_fixes_every_target(
        tmp_path: Path) -> None:
    server = start_server(
        [sys.executable, "-m", "remediate", "sandbox", "serve", "--json", "--port", "0",
         "--fleet", "3", "--workspaces", "0", "--no-pitfalls", "--lose-replies", "0.4",
         "--seed", "3", "--clock-factor", str(CLOCK_FACTOR)], tmp_path / "server.log",
        clock_factor=CLOCK_FACTOR)
    try:
        report = tmp_path / "run.json"
        run = remediate(["run", OFFLINE_REPAIR, "--yes", "--no-progress", "--journal",
                         str(tmp_path / "j.sqlite"), "--report", f"json:{report}"],
                        server.env(tmp_path), tmp_path / "run.log")

        assert run.finish(600) == 0, run.stderr()[-3000:]
        found = json.loads(report.read_text(encoding="utf-8"))
        assert {t["status"] for t in found["targets"]} == {"succeeded"}
        assert found["retries"]["unknown_outcomes"] > 0
        ec2 = server.client("ec2")
        for instance_id in server.instance_ids:
            assert status_ok(ec2, instance_id)
            assert len(backups(ec2, instance_id)) == 1
    finally:
        server.stop()
