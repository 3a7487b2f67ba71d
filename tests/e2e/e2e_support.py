"""Subprocess scenarios: a sandbox moto server, and `remediate` processes talking to it.

The server runs on a scaled clock (``--clock-factor F``: F simulated seconds per
real second). So that the tool's own waits (15 s polls, step timeouts) pass at the
same pace, `remediate` gets the same (hidden) ``--clock-factor F``; everything
(processes, signals, the journal on disk, boto3 over HTTP) is what an operator
rehearsing against ``remediate sandbox serve`` gets.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import boto3

from cli_support import (
    FAKE_AWS_ENV,
    FOREIGN_AWS_ENV,
    REBOOT_FIRST,
    REGION,
    RootState,
    root_states,
)
from remediate.cli.launch import Environment, RunRequest, execute
from remediate.clock import ScaledClock, VirtualClock
from remediate.sandbox import Durations, Fleet, FleetSpec, Sandbox, serve
from remediate.sandbox.server import free_port

CLOCK_FACTOR_VARIABLE = "REMEDIATE_TEST_CLOCK_FACTOR"


class TimedOut(AssertionError):
    pass


def wait_for(predicate: Callable[[], bool], timeout: float, what: str,
             interval: float = 0.02) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimedOut(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def sandbox_env(endpoint: str, crash_dir: Path, clock_factor: float) -> dict[str, str]:
    """The environment of a `remediate` process that talks to the sandbox at ``endpoint``
    (as the operator's shell would after `remediate sandbox serve`)."""
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_AWS_ENV}
    env.update(FAKE_AWS_ENV, AWS_ENDPOINT_URL=endpoint, REMEDIATE_CRASH_DIR=str(crash_dir),
               **{CLOCK_FACTOR_VARIABLE: str(clock_factor)})
    return env


# ---- the server -------------------------------------------------------------------------


class Served:
    """boto3 clients of a sandbox server, and the environment of a `remediate` process that
    talks to it (``endpoint``, ``clock_factor`` and a ``_clients`` cache are the server's)."""

    endpoint: str
    clock_factor: float
    _clients: dict[str, Any]

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3.client(
                service, region_name=REGION, endpoint_url=self.endpoint,
                aws_access_key_id="testing", aws_secret_access_key="testing")
        return self._clients[service]

    def env(self, crash_dir: Path) -> dict[str, str]:
        return sandbox_env(self.endpoint, crash_dir, self.clock_factor)


@dataclass
class SandboxServer(Served):
    process: subprocess.Popen[str]
    endpoint: str
    fleet: dict[str, Any]
    clock_factor: float
    _clients: dict[str, Any] = field(default_factory=dict)

    @property
    def instance_ids(self) -> list[str]:
        return sorted(t["instance_id"] for t in self.fleet["targets"])

    @property
    def rescue_param(self) -> list[str]:
        ami = self.fleet["regions"][REGION]["rescue_windows_ami"]
        return ["--param", f"rescue_image_id={ami}"]

    def root_states(self) -> dict[str, RootState]:
        """Every target's root state now: what a run must leave (or put back) as it was."""
        return root_states(self.client("ec2"), self.instance_ids)

    def stop(self) -> None:
        stop(self.process)


class InThreadServer(Served):
    """`remediate sandbox serve` in a thread of this process: its Sandbox is at hand (faults
    to inject, every request it received), while `remediate` runs as processes against it."""

    def __init__(self, spec: FleetSpec, clock_factor: float,
                 durations: Durations | None = None) -> None:
        self.clock_factor = clock_factor
        self.stop = threading.Event()
        self._ready = threading.Event()
        self.endpoint = ""
        self._fleet: Fleet | None = None
        self._sandbox: Sandbox | None = None
        self._clients: dict[str, Any] = {}
        self._thread = threading.Thread(target=serve, args=(free_port(), spec), daemon=True,
                                        kwargs={"clock_factor": clock_factor, "stop": self.stop,
                                                "on_ready": self._on_ready,
                                                "out": io.StringIO(), "durations": durations})

    def _on_ready(self, endpoint: str, fleet: Fleet, sandbox: Sandbox) -> None:
        self.endpoint, self._fleet, self._sandbox = endpoint, fleet, sandbox
        self._ready.set()

    def start(self) -> InThreadServer:
        from moto.core.base_backend import BackendDict

        # moto's backends live as long as this process: start from an empty AWS, not
        # from what an earlier test's server left.
        BackendDict.reset()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        self._thread.start()
        assert self._ready.wait(60), "the sandbox server did not come up"
        return self

    def close(self) -> None:
        self.stop.set()
        self._thread.join(30)

    @property
    def fleet(self) -> Fleet:
        assert self._fleet is not None
        return self._fleet

    @property
    def sandbox(self) -> Sandbox:
        assert self._sandbox is not None
        return self._sandbox

    def workspace_states(self) -> dict[str, str]:
        ids = [w.workspace_id for w in self.fleet.workspaces]
        found = self.client("workspaces").describe_workspaces(WorkspaceIds=ids)["Workspaces"]
        return {w["WorkspaceId"]: w["State"] for w in found}

    def sent(self, operation: str) -> int:
        """How many ``operation`` requests the sandbox received (throttled ones too)."""
        return sum(1 for call in self.sandbox.api_calls if call.operation == operation)


def start_server(command: Sequence[str], log: Path, timeout: float = 60.0,
                 clock_factor: float = 1.0) -> SandboxServer:
    """Start a sandbox server (``command`` prints one JSON line when ready) and read it."""
    import json

    with log.open("w", encoding="utf-8") as stderr:
        process = subprocess.Popen(list(command), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        line = Lines(process).next(timeout, f"{command[2:]} to announce itself (log: {log})")
        data = json.loads(line)
    except BaseException:
        stop(process)
        raise
    return SandboxServer(process, data["endpoint"], data["fleet"], clock_factor)


class Lines:
    """What a process prints on stdout, line by line, each within a timeout (a thread reads
    it: ``select`` on a buffered pipe misses lines already read into the buffer)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self._lines: queue.Queue[str | None] = queue.Queue()  # None: end of output
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:  # closed here, at the end of the output
            for line in self.process.stdout:
                self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def next(self, timeout: float, what: str) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimedOut(f"timed out after {timeout:.0f}s waiting for {what}") from None
        if line is None:
            raise AssertionError(f"exited with {self.process.wait()} before {what}")
        return line


def stop(process: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """SIGTERM (a server's way to stop), then SIGKILL if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---- remediate processes ---------------------------------------------------------------


@dataclass
class Remediate:
    """One `remediate` process; what it prints goes to ``<log>.out`` and ``<log>.err``."""

    process: subprocess.Popen[bytes]
    log: Path

    def stdout(self) -> str:
        return self.log.with_suffix(".out").read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.log.with_suffix(".err").read_text(encoding="utf-8", errors="replace")

    def finish(self, timeout: float) -> int:
        """Its exit code; it must exit within ``timeout`` seconds (then it is killed)."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise TimedOut(f"remediate still running after {timeout:.0f}s:\n"
                           + self.stderr()[-3000:]) from None


def remediate(args: Sequence[str], env: dict[str, str], log: Path, *,
              scaled: bool = True, stdin: int | IO[Any] = subprocess.DEVNULL,
              cwd: Path | None = None) -> Remediate:
    """Start `remediate ARGS` (on the scaled clock unless ``scaled`` is false), in ``cwd``
    (default: this process's)."""
    pace = ["--clock-factor", env[CLOCK_FACTOR_VARIABLE]] if scaled else []
    with log.with_suffix(".out").open("wb") as out, log.with_suffix(".err").open("wb") as err:
        process = subprocess.Popen([sys.executable, "-m", "remediate", *args, *pace],
                                   stdin=stdin, stdout=out, stderr=err, env=env, cwd=cwd)
    return Remediate(process, log)


def journaled_calls(journal: Path) -> int:
    """Mutating calls the run has journaled so far (read-only: the run is writing)."""
    rows = journal_rows(journal, "SELECT COUNT(*) FROM calls")
    return int(rows[0][0]) if rows else 0


def journal_rows(journal: Path, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """A read-only query of the journal a run is writing ([] until it can answer)."""
    if not journal.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True,
                                                timeout=1.0)) as db:
            return db.execute(sql, tuple(args)).fetchall()
    except sqlite3.Error:  # not created yet, or busy: not there yet
        return []


def calls_after(journal: Path, call_id: int, operation: str | None = None,
                rollback: bool | None = None) -> list[tuple[int, str, str]]:
    """(call id, target key, step id) of the calls journaled after ``call_id``."""
    sql = "SELECT call_id, target_key, step_id FROM calls WHERE call_id > ?"
    args: list[Any] = [call_id]
    if operation is not None:
        sql, args = sql + " AND operation = ?", [*args, operation]
    if rollback is not None:
        sql, args = sql + " AND rollback = ?", [*args, int(rollback)]
    return [(int(cid), key, step) for cid, key, step in journal_rows(journal, sql, args)]


def last_call_id(journal: Path) -> int:
    rows = journal_rows(journal, "SELECT COALESCE(MAX(call_id), 0) FROM calls")
    return int(rows[0][0]) if rows else 0


# ---- the executor on a clock that moves like the real one -------------------------------


class ClockSpinning(RuntimeError):
    pass


class SpinDetectingClock(ScaledClock):
    """A scaled clock (time moves between two readings, as on the real one) that gives up
    when the scheduler asks it to wait far more often than any run needs."""

    def __init__(self, factor: float, limit: int = 20_000) -> None:
        super().__init__(factor)
        self.limit = limit
        self.waits = 0

    def sleep_until(self, deadline: float, wake: threading.Event | None = None) -> None:
        self.waits += 1
        if self.waits > self.limit:
            raise ClockSpinning(f"{self.waits} waits, the last until {deadline:.6f} "
                                f"(now {self.now():.6f}): the scheduler is spinning")
        super().sleep_until(deadline, wake)


def plan_on_a_moving_clock() -> int:
    """`remediate plan ec2-reboot-first.yaml` on a 2-instance sandbox fleet, the tool's
    clock a :class:`SpinDetectingClock` (it raises :class:`ClockSpinning` rather than
    spin forever)."""
    with Sandbox(clock=VirtualClock()) as sandbox:
        sandbox.build_fleet(FleetSpec(plain=2, azs=1))
        env = Environment(clock=SpinDetectingClock(1000.0), session=sandbox.boto3_session(),
                          interactive=False)
        request = RunRequest(REBOOT_FIRST, dry_run=True, yes=True, plan_format="json")
        with contextlib.redirect_stdout(io.StringIO()):
            return execute(request, env)

