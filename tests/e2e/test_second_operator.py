"""Two operators on one host, each with their own journal: while the first `remediate run`
lives, the second refuses every target the first holds, before any call that changes one,
one line per target naming the first run; the first then finishes as if alone.

The first process is frozen with SIGSTOP while the second runs: alive (as a run busy
waiting on AWS is) and holding its targets mid-way.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from cli_support import OFFLINE_REPAIR, json_file, misplaced_roots, repair_problems
from e2e_support import SandboxServer, remediate, wait_for
from remediate.claims.tag import CLAIM_TAG


def rows(journal: Path, sql: str) -> list[tuple[object, ...]]:
    """Committed rows (read-only: the run may be writing)."""
    if not journal.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True,
                                                timeout=1.0)) as db:
            return list(db.execute(sql))
    except sqlite3.Error:  # not created yet, or busy
        return []


def step_calls(journal: Path) -> int:
    """Mutating calls of the run's steps so far (its claims are filed apart)."""
    found = rows(journal, "SELECT COUNT(*) FROM calls WHERE target_key NOT LIKE 'claim:%'")
    return int(str(found[0][0])) if found else 0


def claims(server: SandboxServer) -> dict[str, str | None]:
    found = server.client("ec2").describe_tags(Filters=[{"Name": "key", "Values": [CLAIM_TAG]}])
    values = {t["ResourceId"]: t["Value"] for t in found["Tags"]}
    return {i: values.get(i) for i in server.instance_ids}


@pytest.mark.slow
def test_a_second_run_with_its_own_journal_refuses_the_live_runs_targets(
        sandbox_server: Callable[..., SandboxServer], tmp_path: Path) -> None:
    server = sandbox_server(fleet=3)
    before = server.root_states()
    env = server.env(tmp_path / "crashes")
    first_journal = tmp_path / "alice" / "journal.sqlite"
    second_journal = tmp_path / "bob" / "journal.sqlite"
    first = remediate(["run", OFFLINE_REPAIR, "--yes", "--no-progress", *server.rescue_param,
                       "--journal", str(first_journal)], env, tmp_path / "alice.log")
    wait_for(lambda: step_calls(first_journal) >= 2, 60, "the first run's first mutating calls")
    first.process.send_signal(signal.SIGSTOP)
    try:
        [(run_id, started)] = rows(first_journal, "SELECT run_id, started_at FROM runs")
        held = claims(server)

        second = remediate(["run", OFFLINE_REPAIR, "--yes", "--no-progress",
                            *server.rescue_param, "--journal", str(second_journal),
                            "--report", f"json:{tmp_path / 'bob.json'}"], env,
                           tmp_path / "bob.log")

        assert second.finish(60) == 2, second.stderr()
        lines = {i: (f"default/us-east-1/{i} is locked by run {run_id} (pid "
                     f"{first.process.pid} on {socket.gethostname()}, started {started}) "
                     f"(journal {first_journal})") for i in server.instance_ids}
        report = json_file(tmp_path / "bob.json")
        assert {t["id"]: (t["status"], t["error"]) for t in report["targets"]} == {
            i: ("refused", line) for i, line in lines.items()}
        assert all(sum(line in row for row in second.stderr().splitlines()) == 1
                   for line in lines.values()), second.stderr()
        # The second run journaled (so sent) no call that changes anything, claims included.
        assert rows(second_journal, "SELECT operation FROM calls") == []
        assert all(v is not None and v.startswith(f"run={run_id} ") for v in held.values())
        assert claims(server) == held
    finally:
        first.process.send_signal(signal.SIGCONT)

    assert first.finish(120) == 0, first.stderr()
    ec2 = server.client("ec2")
    assert {i: repair_problems(ec2, state) for i, state in before.items()} == {
        i: [] for i in before}
    assert misplaced_roots(ec2, before) == []
    assert claims(server) == dict.fromkeys(server.instance_ids)
