"""The host's registry of live runs: which targets each run on this host is working on.

The journal's lock (:mod:`remediate.journal.locks`) sees only the runs that write the
same journal file; two SREs on one bastion, each in their own folder or with their own
``--journal``, would both start on the same instance. So every run (and ``resume``)
also writes an entry here, one JSON file per process, naming its run, pid, host,
start, journal and the targets it holds, and checks the other entries first:

* a target held by a live process of another run (or another live process of the
  same run) is refused, naming that run;
* an entry whose process is gone (a crash, SIGKILL) frees its targets, as a stale
  journal lock does (the caller warns); a pid reused by an unrelated process is told
  apart by the process's start time where the system shows it (Linux ``/proc``);
* entries written on another host (a home folder shared over NFS) are left alone and
  not honoured: no pid there can be checked, and the claim tag in AWS covers them.

Targets are keyed by Region and id, not by the account's label: two operators may
call one account by different profile names, and instance and WorkSpace ids do not
repeat across accounts in practice (a clash would only refuse, never double-run).

Check and write happen under an exclusive ``flock`` of the folder's lock file, so
two runs starting at the same moment cannot both take a target; entries are
written to a temporary file and ``os.replace``d, so a reader never sees half of one.
The folder is per user (``$REMEDIATE_STATE_DIR``, else ``$XDG_STATE_HOME/remediate``,
else ``~/.local/state/remediate``): runs of other users on the same host are seen
through the claim tag only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from remediate.actions.contract import Target
from remediate.errors import UserError
from remediate.journal.locks import holder_alive, process_start
from remediate.journal.records import LockHolder

STATE_DIR_VARIABLE: Final = "REMEDIATE_STATE_DIR"
_LOCK_FILE: Final = ".lock"


class RegistryError(UserError):
    """The registry's folder cannot be used: one line, exit 1, before any change."""


def state_dir() -> Path:
    """Where remediate keeps state of this user on this host."""
    explicit = os.environ.get(STATE_DIR_VARIABLE)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "remediate"


def registry_key(target: Target) -> str:
    return f"{target.region}/{target.id}"


@dataclass(frozen=True)
class Entry:
    """One live run process and the targets (registry keys) it holds."""

    run_id: str
    pid: int
    host: str
    started_at: str
    journal: str
    targets: frozenset[str]
    process_start: int | None = None

    @property
    def file_name(self) -> str:
        return f"{self.run_id.replace(os.sep, '_')}.{self.pid}.json"

    def holder(self, target_key: str) -> LockHolder:
        return LockHolder(target_key, self.run_id, self.pid, self.host, self.started_at)

    def alive(self) -> bool:
        return holder_alive(self.pid, self.process_start)

    def to_json(self) -> str:
        return json.dumps({"run_id": self.run_id, "pid": self.pid, "host": self.host,
                           "started_at": self.started_at, "journal": self.journal,
                           "targets": sorted(self.targets),
                           "process_start": self.process_start}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Entry:
        data = json.loads(text)
        return cls(str(data["run_id"]), int(data["pid"]), str(data["host"]),
                   str(data["started_at"]), str(data["journal"]),
                   frozenset(str(t) for t in data["targets"]), data.get("process_start"))


@dataclass(frozen=True)
class HostOutcome:
    """What :meth:`HostRegistry.acquire` got, by target key: held by this run now,
    refused (another live run holds it), taken from a run whose process is gone."""

    acquired: tuple[str, ...]
    refused: dict[str, Entry] = field(default_factory=dict)
    taken_over: dict[str, Entry] = field(default_factory=dict)
    # Entries that could not be read (named, with why), ignored.
    unreadable: tuple[str, ...] = ()


class HostRegistry:
    def __init__(self, folder: Path, host: str) -> None:
        self.folder = folder
        self.host = host

    @classmethod
    def default(cls, host: str) -> HostRegistry:
        return cls(state_dir() / "runs", host)

    # ---- reading -------------------------------------------------------------------

    def _entries(self) -> tuple[list[Entry], list[str]]:
        entries: list[Entry] = []
        unreadable: list[str] = []
        if not self.folder.is_dir():
            return entries, unreadable
        for path in sorted(self.folder.glob("*.json")):
            try:
                entries.append(Entry.from_json(path.read_text(encoding="utf-8")))
            except FileNotFoundError:
                continue  # its run ended while we listed the folder
            except (OSError, ValueError, KeyError, TypeError) as exc:
                unreadable.append(f"{path}: {exc}")
        return entries, unreadable

    def _others(self, run_id: str, pid: int) -> tuple[list[Entry], list[Entry], list[str]]:
        """(live entries of other processes, dead ones of this host, unreadable)."""
        entries, unreadable = self._entries()
        live: list[Entry] = []
        dead: list[Entry] = []
        for entry in entries:
            if entry.host != self.host or (entry.run_id == run_id and entry.pid == pid):
                continue
            (live if entry.alive() else dead).append(entry)
        return live, dead, unreadable

    def holders(self, run_id: str, pid: int, targets: Sequence[Target]) -> dict[str, Entry]:
        """Target key -> the live run on this host holding it (read only: dry runs)."""
        live, _dead, _unreadable = self._others(run_id, pid)
        return {t.key: entry for t in targets for entry in live
                if registry_key(t) in entry.targets}

    # ---- writing -------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise RegistryError(
                f"cannot use the run registry {self.folder}: {exc.strerror or exc}; set "
                f"{STATE_DIR_VARIABLE} to a folder you can write") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def acquire(self, run_id: str, pid: int, started_at: str, journal: str,
                targets: Sequence[Target]) -> HostOutcome:
        """Hold every target no other live run on this host holds, in one locked check
        and write; entries of processes that are gone are removed."""
        with self._locked():
            live, dead, unreadable = self._others(run_id, pid)
            acquired: list[str] = []
            refused: dict[str, Entry] = {}
            taken: dict[str, Entry] = {}
            keys: set[str] = set()
            for target in targets:
                key = registry_key(target)
                holder = next((e for e in live if key in e.targets), None)
                if holder is not None:
                    refused[target.key] = holder
                    continue
                gone = next((e for e in dead if key in e.targets and e.run_id != run_id), None)
                if gone is not None:
                    taken[target.key] = gone
                acquired.append(target.key)
                keys.add(key)
            mine = Entry(run_id, pid, self.host, started_at, journal,
                         frozenset(keys) | self._held(run_id, pid), process_start(pid))
            self._write(mine)
            for entry in dead:
                with contextlib.suppress(FileNotFoundError):
                    (self.folder / entry.file_name).unlink()
        return HostOutcome(tuple(acquired), refused, taken, tuple(unreadable))

    def _held(self, run_id: str, pid: int) -> frozenset[str]:
        """What this very process already holds (a second acquire adds to it)."""
        path = self.folder / Entry(run_id, pid, "", "", "", frozenset()).file_name
        try:
            return Entry.from_json(path.read_text(encoding="utf-8")).targets
        except (OSError, ValueError, KeyError, TypeError):
            return frozenset()

    def _write(self, entry: Entry) -> None:
        path = self.folder / entry.file_name
        temporary = path.with_name(f".{path.name}.tmp")
        try:
            temporary.write_text(entry.to_json(), encoding="utf-8")
            os.replace(temporary, path)
        except OSError as exc:
            raise RegistryError(
                f"cannot write the run registry {self.folder}: {exc.strerror or exc}; set "
                f"{STATE_DIR_VARIABLE} to a folder you can write") from None

    def release(self, run_id: str, pid: int) -> None:
        """This process no longer works on any target: remove its entry."""
        path = self.folder / Entry(run_id, pid, "", "", "", frozenset()).file_name
        with self._locked(), contextlib.suppress(FileNotFoundError):
            path.unlink()
