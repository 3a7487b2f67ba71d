"""`remediate run` SIGKILLed while a RestoreWorkspace (or RebuildWorkspaces) is in flight,
the WorkSpace left to finish it, then `remediate resume`: each of these calls throws user
data away, so it must reach each WorkSpace once, and every WorkSpace must end AVAILABLE.

The sandbox server runs in this process (a thread), so the test reads every request it
received (``Sandbox.api_calls``); `remediate` runs as processes against it.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cli_support import WORKSPACES_RECOVER
from e2e_support import InThreadServer, remediate, wait_for
from remediate.sandbox import FleetSpec

CLOCK_FACTOR = 600.0
RUN_TIMEOUT = 120.0
ACCEPT = ["--accept", "workspace-restore-data-loss", "--accept", "workspace-rebuild-data-loss"]
TRANSIENT = {"RestoreWorkspace": "RESTORING", "RebuildWorkspaces": "REBUILDING"}


@pytest.fixture
def server() -> Iterator[InThreadServer]:
    # Each condition once: reboot, restore, rebuild, stopped (healthy), stopped-reboot.
    running = InThreadServer(FleetSpec(plain=0, workspaces=5, azs=1), CLOCK_FACTOR).start()
    yield running
    running.close()


def killed_in_flight(server: InThreadServer, operation: str, journal: Path,
                     tmp_path: Path) -> list[str]:
    """Run the playbook until AWS has received ``operation``, SIGKILL the run, and wait
    until the WorkSpaces it went to (one, or two sent together) are done with it."""
    env = server.env(tmp_path / "crashes")
    run = remediate(["run", WORKSPACES_RECOVER, "--yes", "--no-progress", *ACCEPT,
                     "--journal", str(journal)], env, tmp_path / "run.log")
    # Killed once AWS has every request the journal holds (a request journaled and not
    # yet sent when the process dies is another case: AWS never saw it).
    wait_for(lambda: run.process.poll() is not None or (
        server.sent(operation) > 0
        and server.sent(operation) >= len(journaled_targets(journal, operation))),
        RUN_TIMEOUT, f"{operation} to reach the sandbox")
    assert run.process.poll() is None, f"the run ended first:\n{run.stderr()[-3000:]}"
    run.process.send_signal(signal.SIGKILL)
    run.process.wait()
    targets = journaled_targets(journal, operation)
    assert targets, f"no {operation} in the journal"
    done: Callable[[], bool] = lambda: all(  # noqa: E731
        server.workspace_states()[t] != TRANSIENT[operation] for t in targets)
    wait_for(done, RUN_TIMEOUT, f"{targets} to finish {operation}")
    return targets


def journaled_targets(journal: Path, operation: str) -> list[str]:
    """The WorkSpaces the run's ``operation`` calls went to: the journal holds every
    mutating call's parameters from before it was sent."""
    with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT params FROM calls WHERE operation=?", (operation,)).fetchall()
    requests = [json.loads(params) for (params,) in rows]
    if operation == "RestoreWorkspace":
        return [str(r["WorkspaceId"]) for r in requests]
    return [str(w["WorkspaceId"]) for r in requests for w in r["RebuildWorkspaceRequests"]]


@pytest.mark.slow
@pytest.mark.parametrize("operation", ["RestoreWorkspace", "RebuildWorkspaces"])
def test_a_destructive_call_in_flight_at_sigkill_is_not_sent_again_by_resume(
        server: InThreadServer, tmp_path: Path, operation: str) -> None:
    journal = tmp_path / "journal.sqlite"
    targets = killed_in_flight(server, operation, journal, tmp_path)

    resume = remediate(["resume", str(journal), "--no-progress"],
                       server.env(tmp_path / "crashes"), tmp_path / "resume.log")
    code = resume.finish(RUN_TIMEOUT)

    # Once per WorkSpace that needs it: a restore where a reboot does not help, a rebuild
    # where a restore does not (the sandbox counts every request it received).
    needs = Counter(w.fixed_by for w in server.fleet.workspaces)
    assert (server.sent("RestoreWorkspace"), server.sent("RebuildWorkspaces")) == (
        needs["restore"] + needs["rebuild"], needs["rebuild"]), targets
    assert code == 0, f"{targets}: {resume.stderr()[-3000:]}"
    assert server.workspace_states() == {
        w.workspace_id: "AVAILABLE" for w in server.fleet.workspaces}
