"""The host's registry of live runs: live processes hold their targets, gone ones free them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from remediate.actions.contract import Target
from remediate.claims.registry import (
    STATE_DIR_VARIABLE,
    HostRegistry,
    RegistryError,
    process_start,
    state_dir,
)

HOST = "bastion-1"


def targets(*ids: str, account: str = "default") -> list[Target]:
    return [Target("ec2-instance", i, "us-east-1", account) for i in ids]


@pytest.fixture
def live_pid() -> Iterator[int]:
    """A process of this host that stays alive for the test."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process.pid
    process.kill()
    process.wait()


def gone_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_live_runs_hold_their_targets_and_gone_ones_free_them(tmp_path: Path,
                                                              live_pid: int) -> None:
    registry = HostRegistry(tmp_path / "runs", HOST)
    dead = gone_pid()
    registry.acquire("run-live", live_pid, "2024-07-19T05:00:00+00:00", "/a.sqlite",
                     targets("i-1", "i-2"))
    registry.acquire("run-dead", dead, "2024-07-19T04:00:00+00:00", "/b.sqlite",
                     targets("i-3"))

    # The same instances under another account label: the registry keys by Region and id.
    outcome = registry.acquire("run-new", os.getpid(), "2024-07-19T06:00:00+00:00",
                               "/c.sqlite", targets("i-2", "i-3", "i-4", account="prod"))

    assert outcome.acquired == ("prod/us-east-1/i-3", "prod/us-east-1/i-4")
    assert {k: (e.run_id, e.pid, e.journal) for k, e in outcome.refused.items()} == {
        "prod/us-east-1/i-2": ("run-live", live_pid, "/a.sqlite")}
    assert outcome.refused["prod/us-east-1/i-2"].holder("prod/us-east-1/i-2").describe() == (
        f"locked by run run-live (pid {live_pid} on {HOST}, started 2024-07-19T05:00:00+00:00)")
    assert {k: e.run_id for k, e in outcome.taken_over.items()} == {
        "prod/us-east-1/i-3": "run-dead"}
    # The gone process's entry was removed; the new run's names what it holds.
    names = sorted(p.name for p in (tmp_path / "runs").glob("*.json"))
    assert names == sorted([f"run-live.{live_pid}.json", f"run-new.{os.getpid()}.json"])
    mine = json.loads((tmp_path / "runs" / f"run-new.{os.getpid()}.json").read_text())
    assert mine["targets"] == ["us-east-1/i-3", "us-east-1/i-4"]


def test_a_reused_pid_does_not_keep_a_gone_runs_targets(tmp_path: Path, live_pid: int) -> None:
    registry = HostRegistry(tmp_path / "runs", HOST)
    registry.acquire("run-old", live_pid, "2024-07-19T05:00:00+00:00", "/a.sqlite",
                     targets("i-1"))
    path = tmp_path / "runs" / f"run-old.{live_pid}.json"
    entry = json.loads(path.read_text())
    started = process_start(live_pid)
    assert started is not None and entry["process_start"] == started
    # As if run-old's process had died and the pid had gone to another process since.
    path.write_text(json.dumps({**entry, "process_start": started - 1}))

    outcome = registry.acquire("run-new", os.getpid(), "2024-07-19T06:00:00+00:00",
                               "/b.sqlite", targets("i-1"))

    assert outcome.acquired == ("default/us-east-1/i-1",)
    assert list(outcome.taken_over) == ["default/us-east-1/i-1"]


def test_the_same_run_in_another_live_process_is_refused(tmp_path: Path,
                                                         live_pid: int) -> None:
    registry = HostRegistry(tmp_path / "runs", HOST)
    registry.acquire("run-1", live_pid, "2024-07-19T05:00:00+00:00", "/a.sqlite",
                     targets("i-1"))

    outcome = registry.acquire("run-1", os.getpid(), "2024-07-19T06:00:00+00:00",
                               "/a.sqlite", targets("i-1"))

    assert outcome.acquired == () and list(outcome.refused) == ["default/us-east-1/i-1"]


def test_entries_of_other_hosts_and_unreadable_ones_are_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    HostRegistry(folder, "bastion-2").acquire("run-there", 1, "2024-07-19T05:00:00+00:00",
                                              "/a.sqlite", targets("i-1"))
    (folder / "broken.json").write_text("{not json")

    outcome = HostRegistry(folder, HOST).acquire("run-here", os.getpid(),
                                                 "2024-07-19T06:00:00+00:00", "/b.sqlite",
                                                 targets("i-1"))

    assert outcome.acquired == ("default/us-east-1/i-1",)
    assert outcome.refused == {} and outcome.taken_over == {}
    assert [u.split(": ")[0] for u in outcome.unreadable] == [str(folder / "broken.json")]
    assert (folder / "run-there.1.json").exists()  # a pid there cannot be judged here


def test_holders_reads_without_writing_and_release_removes_the_entry(
        tmp_path: Path, live_pid: int) -> None:
    registry = HostRegistry(tmp_path / "runs", HOST)
    registry.acquire("run-live", live_pid, "2024-07-19T05:00:00+00:00", "/a.sqlite",
                     targets("i-1"))
    before = sorted((tmp_path / "runs").iterdir())

    held = registry.holders("plan", os.getpid(), targets("i-1", "i-2"))

    assert {k: e.run_id for k, e in held.items()} == {"default/us-east-1/i-1": "run-live"}
    assert sorted((tmp_path / "runs").iterdir()) == before
    registry.release("run-live", live_pid)
    assert registry.holders("plan", os.getpid(), targets("i-1")) == {}


def test_a_folder_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "runs").write_text("a file, not a folder")

    with pytest.raises(RegistryError) as error:
        HostRegistry(tmp_path / "runs", HOST).acquire(
            "run-1", os.getpid(), "2024-07-19T05:00:00+00:00", "/a.sqlite", targets("i-1"))

    assert str(error.value) == (f"cannot use the run registry {tmp_path / 'runs'}: File "
                                f"exists; set {STATE_DIR_VARIABLE} to a folder you can write")


def test_the_state_folder_follows_the_variables(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.setenv(STATE_DIR_VARIABLE, str(tmp_path / "explicit"))
    assert state_dir() == tmp_path / "explicit"
    monkeypatch.delenv(STATE_DIR_VARIABLE)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_dir() == tmp_path / "xdg" / "remediate"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert state_dir() == tmp_path / "home" / ".local" / "state" / "remediate"
