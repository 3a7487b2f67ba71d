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
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.core.base_backend import BackendDict

from cli_support import REGION, WORKSPACES_RECOVER
from e2e_support import remediate, sandbox_env, wait_for
from remediate.sandbox import Fleet, FleetSpec, Sandbox, serve
from remediate.sandbox.server import free_port

CLOCK_FACTOR = 600.0
RUN_TIMEOUT = 120.0
ACCEPT = ["--accept", "workspace-restore-data-loss", "--accept", "workspace-rebuild-data-loss"]
TRANSIENT = {"RestoreWorkspace": "RESTORING", "RebuildWorkspaces": "REBUILDING"}


class InThreadServer:
    """`remediate sandbox serve` in a thread of this process: its Sandbox is at hand."""

    def __init__(self, spec: FleetSpec) -> None:
        self.stop = threading.Event()
        self._ready = threading.Event()
        self.endpoint = ""
        self.fleet: Fleet | None = None
        self.sandbox: Sandbox | None = None
        self._thread = threading.Thread(target=serve, args=(free_port(), spec), daemon=True,
                                        kwargs={"clock_factor": CLOCK_FACTOR, "stop": self.stop,
                                                "on_ready": self._on_ready})

    def _on_ready(self, endpoint: str, fleet: Fleet, sandbox: Sandbox) -> None:
        self.endpoint, self.fleet, self.sandbox = endpoint, fleet, sandbox
        self._ready.set()

    def start(self) -> None:
        # moto's backends live as long as this process: start from an empty AWS, not
        # from the WorkSpaces an earlier test's server left.
        BackendDict.reset()
        self._thread.start()
        assert self._ready.wait(60), "the sandbox server did not come up"

    def close(self) -> None:
        self.stop.set()
        self._thread.join(30)

    def workspaces(self) -> Any:
        return boto3.client("workspaces", region_name=REGION, endpoint_url=self.endpoint,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def states(self) -> dict[str, str]:
        assert self.fleet is not None
        ids = [w.workspace_id for w in self.fleet.workspaces]
        found = self.workspaces().describe_workspaces(WorkspaceIds=ids)["Workspaces"]
        return {w["WorkspaceId"]: w["State"] for w in found}

    def sent(self, operation: str) -> int:
        assert self.sandbox is not None
        return self.sandbox.api_call_counts()[("workspaces", operation)]


@pytest.fixture
def server() -> Iterator[InThreadServer]:
    # Each condition once: reboot, restore, rebuild, stopped (healthy), stopped-reboot.
    running = InThreadServer(FleetSpec(plain=0, workspaces=5, azs=1))
    running.start()
    yield running
    running.close()


def killed_in_flight(server: InThreadServer, operation: str, journal: Path,
                     tmp_path: Path) -> list[str]:
    """Run the playbook until AWS has received ``operation``, SIGKILL the run, and wait
    until the WorkSpaces it went to (one, or two sent together) are done with it."""
    env = sandbox_env(server.endpoint, tmp_path / "crashes", CLOCK_FACTOR)
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
        server.states()[t] != TRANSIENT[operation] for t in targets)
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
                       sandbox_env(server.endpoint, tmp_path / "crashes", CLOCK_FACTOR),
                       tmp_path / "resume.log")
    code = resume.finish(RUN_TIMEOUT)

    assert server.fleet is not None
    # Once per WorkSpace that needs it: a restore where a reboot does not help, a rebuild
    # where a restore does not (the sandbox counts every request it received).
    needs = Counter(w.fixed_by for w in server.fleet.workspaces)
    assert (server.sent("RestoreWorkspace"), server.sent("RebuildWorkspaces")) == (
        needs["restore"] + needs["rebuild"], needs["rebuild"]), targets
    assert code == 0, f"{targets}: {resume.stderr()[-3000:]}"
    assert server.states() == {wid: "AVAILABLE" for wid in server.states()}
