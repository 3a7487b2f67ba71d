"""`remediate run --lock-table`: two operators' runs on overlapping targets, started at once."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_support import (
    REBOOT_FIRST,
    CliSandbox,
    cli_sandbox,
    ctrl_c_after,
    json_file,
    run_cli,
    status_ok,
)
from remediate.actions import registry
from remediate.claims.registry import HostRegistry
from remediate.cli import launch
from remediate.journal import Journal
from remediate.leases import LeaseTable, Owner
from remediate.sandbox import FleetSpec

TABLE = "remediate-leases"
READ_ONLY = ("Describe", "Get", "List")
ACCOUNT_ID = "123456789012"  # what the sandbox's STS GetCallerIdentity answers


class Turns:
    """Two runs started at once on two overlapping targets each win one of them: Alice
    the first of the two she tries to lease, Bob the other. A run about to lease an
    overlapping target the other is to win waits until the other has it."""

    def __init__(self, wanted: dict[str, list[str]]) -> None:
        self.wanted = {name: set(ids) for name, ids in wanted.items()}
        self.overlap = self.wanted["alice"] & self.wanted["bob"]
        self.winner: dict[str, str] = {}  # instance id -> run name
        self.taken: set[str] = set()
        self.runs: dict[str, str] = {}  # run id -> run name
        self.keys: list[str] = []  # every lease key asked for
        self.cond = threading.Condition()

    def wrap_acquire(self, acquire: Callable[..., Any]) -> Callable[..., Any]:
        def acquiring(table: LeaseTable, keys: Any) -> Any:
            keys = list(keys)
            self.keys.extend(keys)
            ids = [k.rsplit("/", 1)[1] for k in keys]
            name = next(n for n, w in self.wanted.items() if w == set(ids))
            with self.cond:
                self.runs[table.owner.run_id] = name
                if name == "alice":
                    first = next(i for i in ids if i in self.overlap)
                    self.winner = {i: "alice" if i == first else "bob" for i in self.overlap}
                    self.cond.notify_all()
            return acquire(table, keys)

        return acquiring

    def wrap_one(self, acquire_one: Callable[..., Any]) -> Callable[..., Any]:
        def one(table: LeaseTable, key: str) -> Any:
            instance = key.rsplit("/", 1)[1]
            with self.cond:
                name = self.runs[table.owner.run_id]
                assert self.cond.wait_for(lambda: bool(self.winner), timeout=30)
                if instance in self.overlap and self.winner[instance] != name:
                    assert self.cond.wait_for(lambda: instance in self.taken, timeout=30)
            try:
                return acquire_one(table, key)
            finally:
                with self.cond:
                    self.taken.add(instance)
                    self.cond.notify_all()

        return one


@pytest.fixture
def five(monkeypatch: pytest.MonkeyPatch) -> Iterator[CliSandbox]:
    with cli_sandbox(monkeypatch, FleetSpec(plain=0, reboot_fixable=5, azs=1)) as cli:
        # Runs in threads: only the main thread may install a SIGINT handler.
        monkeypatch.setattr(launch, "ctrl_c", lambda _executor: contextlib.nullcontext())
        yield cli


def mutated(journal: Path, run_id: str) -> set[str]:
    """Instance ids a run sent a mutating call for, from its journal."""
    return {call.target_key.rsplit("/", 1)[1] for call in Journal(journal).calls(run_id)
            if not call.operation.startswith(READ_ONLY)}


def test_two_runs_on_overlapping_targets_never_touch_one_twice_and_name_the_holder(
        five: CliSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = sorted(five.fleet.instance_ids())
    wanted = {"alice": [s[1], s[2], s[3], s[4]], "bob": [s[0], s[1], s[4]]}
    turns = Turns(wanted)
    # Two operators on two machines: each its own host registry of live runs, so the lease
    # table is what keeps them apart (the threads share one process, one host name).
    monkeypatch.setattr(HostRegistry, "default", classmethod(
        lambda cls, host: cls(tmp_path / threading.current_thread().name, host)))
    monkeypatch.setattr(LeaseTable, "acquire", turns.wrap_acquire(LeaseTable.acquire))
    monkeypatch.setattr(LeaseTable, "_acquire_one", turns.wrap_one(LeaseTable._acquire_one))
    codes: dict[str, int] = {}

    def operator(name: str) -> None:
        codes[name] = run_cli(
            "run", REBOOT_FIRST, "--yes", "--no-progress", "--lock-table", TABLE,
            "--target-ids", ",".join(wanted[name]), "--journal", str(tmp_path / f"{name}.db"),
            "--report", f"json:{tmp_path / name}.json")

    registry.names()  # filled on first use (not thread-safe): before two threads use it
    threads = [threading.Thread(target=operator, args=(n,)) for n in wanted]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    assert codes == {"alice": 2, "bob": 2}  # both finished; each had a target refused
    # Leases name the account by its id (STS), not by its label ("default").
    assert sorted(set(turns.keys)) == [f"{ACCOUNT_ID}/us-east-1/{i}" for i in s]
    reports = {n: json_file(tmp_path / f"{n}.json") for n in wanted}
    ids = {n: r["run_id"] for n, r in reports.items()}
    statuses = {n: {t["id"]: (t["status"], t["error"]) for t in r["targets"]}
                for n, r in reports.items()}

    def held_by(other: str, instance: str) -> str:
        return (f"default/us-east-1/{instance} is locked by run {ids[other]} (pid {os.getpid()} "
                f"on {socket.gethostname()}, started 2024-07-19T05:30:00+00:00) "
                f"(lock table {TABLE})")

    alices, bobs = (sorted(i for i, n in turns.winner.items() if n == name)
                    for name in ("alice", "bob"))
    assert len(alices) == len(bobs) == 1
    ok = ("succeeded", None)
    assert statuses["alice"] == {**dict.fromkeys([s[2], s[3], *alices], ok),
                                 bobs[0]: ("refused", held_by("bob", bobs[0]))}
    assert statuses["bob"] == {**dict.fromkeys([s[0], *bobs], ok),
                               alices[0]: ("refused", held_by("alice", alices[0]))}
    touched = {n: mutated(tmp_path / f"{n}.db", ids[n]) for n in wanted}
    assert touched == {"alice": {s[2], s[3], *alices}, "bob": {s[0], *bobs}}
    assert all(status_ok(five.ec2, i) for i in s)
    # Both released their leases at the end.
    dynamodb = five.sandbox.client("dynamodb")
    assert dynamodb.scan(TableName=TABLE)["Items"] == []


def test_leases_are_released_after_ctrl_c_and_taken_again_by_resume(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    with cli_sandbox(monkeypatch, FleetSpec(plain=0, reboot_fixable=3, azs=1)) as cli:
        canary, held, free = sorted(cli.fleet.instance_ids())
        dynamodb = cli.sandbox.client("dynamodb")
        journal = str(tmp_path / "j.sqlite")
        ctrl_c_after(monkeypatch, "verify")

        code = run_cli("run", REBOOT_FIRST, "--yes", "--no-progress", "--lock-table", TABLE,
                       "--journal", journal)

        assert code == 130, capsys.readouterr().err
        assert dynamodb.scan(TableName=TABLE)["Items"] == []  # released after Ctrl-C
        other = LeaseTable(dynamodb, TABLE, owner=Owner("r-other", "laptop-b", 4242),
                           clock=cli.clock)
        taken_at = cli.clock.wall().isoformat()
        assert other.acquire([f"{ACCOUNT_ID}/us-east-1/{held}"]).granted
        capsys.readouterr()

        code = run_cli("resume", journal, "--lock-table", TABLE, "--no-progress",
                       "--report", f"json:{tmp_path / 'resumed.json'}")

        assert code == 2, capsys.readouterr().err
        statuses = {t["id"]: (t["status"], t["error"])
                    for t in json_file(tmp_path / "resumed.json")["targets"]}
        assert statuses[held] == ("refused", (
            f"default/us-east-1/{held} is locked by run r-other (pid 4242 on laptop-b, "
            f"started {taken_at}) (lock table {TABLE})"))
        assert statuses[free] == ("succeeded", None)  # the canary finished before Ctrl-C
        assert [status_ok(cli.ec2, i) for i in (canary, held, free)] == [True, False, True]
        assert [i["pk"]["S"] for i in dynamodb.scan(TableName=TABLE)["Items"]] == [
            f"{ACCOUNT_ID}/us-east-1/{held}"]
