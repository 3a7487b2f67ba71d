"""`remediate run` SIGKILLed while a RestoreWorkspace (or RebuildWorkspaces) is in flight,
the WorkSpace left to finish it, then `remediate resume`: each of these calls throws user
data away, so it must reach each WorkSpace once, and every WorkSpace must end AVAILABLE.

The sandbox server runs in this process (a thread), so the test reads every request it
received (``Sandbox.api_calls``); `remediate` runs as processes against it.
"""

from __future__ import annotations

import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

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
                     tmp_path: Path) -> str:
    """Run the playbook until AWS has received ``operation``, SIGKILL the run, and wait
    until the WorkSpace it went to is done with it; that WorkSpace's id."""
    env = sandbox_env(server.endpoint, tmp_path / "crashes", CLOCK_FACTOR)
    run = remediate(["run", WORKSPACES_RECOVER, "--yes", "--no-progress", *ACCEPT,
                     "--journal", str(journal)], env, tmp_path / "run.log")
    wait_for(lambda: run.process.poll() is not None or server.sent(operation) > 0,
             RUN_TIMEOUT, f"{operation} to reach the sandbox")
    assert run.process.poll() is None, f"the run ended first:\n{run.stderr()[-3000:]}"
    run.process.send_signal(signal.SIGKILL)
    run.process.wait()
    [target] = [wid for wid, state in server.states().items()
                if state == TRANSIENT[operation]]
    left: Callable[[], bool] = lambda: server.states()[target] != TRANSIENT[operation]  # noqa: E731
    wait_for(left, RUN_TIMEOUT, f"{target} to finish {operation}")
    return target


@pytest.mark.slow
@pytest.mark.parametrize("operation", ["RestoreWorkspace", "RebuildWorkspaces"])
def test_a_destructive_call_in_flight_at_sigkill_is_not_sent_again_by_resume(
        server: InThreadServer, tmp_path: Path, operation: str) -> None:
    journal = tmp_path / "journal.sqlite"
    target = killed_in_flight(server, operation, journal, tmp_path)

    resume = remediate(["resume", str(journal), "--no-progress"],
                       sandbox_env(server.endpoint, tmp_path / "crashes", CLOCK_FACTOR),
                       tmp_path / "resume.log")
    code = resume.finish(RUN_TIMEOUT)

    assert server.fleet is not None
    # Once per WorkSpace that needs it: a restore where a reboot does not help, a rebuild
    # where a restore does not (the sandbox counts every request it received).
    needs = Counter(w.fixed_by for w in server.fleet.workspaces)
    assert (server.sent("RestoreWorkspace"), server.sent("RebuildWorkspaces")) == (
        needs["restore"] + needs["rebuild"], needs["rebuild"]), target
    assert code == 0, f"{target}: {resume.stderr()[-3000:]}"
    assert server.states() == {wid: "AVAILABLE" for wid in server.states()}
