"""`remediate resume` of a run whose process is still alive: refused in one line, the
journal untouched; once that process is killed, `resume` finishes the run.

The running process is frozen with SIGSTOP while `resume` looks at the journal: it is
alive (as a run busy waiting on AWS is) and cannot write, so the journal before and
after the refused resume can be compared row for row.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from cli_support import (
    OFFLINE_REPAIR,
    misplaced_roots,
    repair_problems,
    rescue_instances,
)
from e2e_support import SandboxServer, journaled_calls, remediate, wait_for

TABLES = ("runs", "run_state", "targets", "steps", "calls", "services", "locks")


def journal_rows(journal: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every committed row of every table (read-only: the run may hold a transaction)."""
    with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as db:
        return {table: sorted(db.execute(f"SELECT * FROM {table}"), key=repr)
                for table in TABLES}


@pytest.mark.slow
def test_resume_refuses_a_live_run_and_continues_it_once_it_is_killed(
        sandbox_server: Callable[..., SandboxServer], tmp_path: Path) -> None:
    server = sandbox_server(fleet=3)
    before = server.root_states()
    env = server.env(tmp_path / "crashes")
    journal = tmp_path / "journal.sqlite"
    run = remediate(["run", OFFLINE_REPAIR, "--yes", "--no-progress", *server.rescue_param,
                     "--journal", str(journal)], env, tmp_path / "run.log")
    wait_for(lambda: journaled_calls(journal) >= 2, 60, "the canary's first mutating calls")
    run.process.send_signal(signal.SIGSTOP)
    try:
        frozen = journal_rows(journal)
        [(run_id, *_)] = frozen["runs"]

        refused = remediate(["resume", str(journal), "--no-progress"], env,
                            tmp_path / "refused.log")
        code = refused.finish(60)

        assert code == 1, refused.stderr()
        assert refused.stderr() == (
            f"error: {journal}: run {run_id} is still going (pid {run.process.pid} on this "
            "host is alive): let it finish, or stop it, then resume\n")
        assert journal_rows(journal) == frozen
    finally:
        run.process.send_signal(signal.SIGKILL)
        run.process.wait()

    final = remediate(["resume", str(journal), "--no-progress"], env, tmp_path / "final.log")

    assert final.finish(60) == 0, final.stderr()
    assert final.stderr().splitlines()[-1] == f"run {run_id} finished: 3 succeeded"
    ec2 = server.client("ec2")
    assert {i: repair_problems(ec2, state) for i, state in before.items()} == {
        i: [] for i in before}
    assert misplaced_roots(ec2, before) == []
    assert rescue_instances(ec2) == []
