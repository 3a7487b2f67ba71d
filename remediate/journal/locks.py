"""Target locks: two runs sharing a journal never work on the same target at once.

A lock names the run, process and host that holds it. A lock whose process is
gone (same host, pid no longer alive) is stale: the tool crashed or was killed,
and the new run may take it over (the caller warns the operator). A lock held by
another host cannot be checked and is always honoured.
"""

from __future__ import annotations

import os
import sqlite3

from remediate.journal.records import LockHolder, LockOutcome


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _refuse(holder: LockHolder, run_id: str, pid: int, host: str) -> bool:
    """Whether ``holder`` keeps its lock against ``run_id`` in process ``pid``."""
    if holder.host != host:
        return True  # cannot see that process: honour the lock
    if holder.run_id == run_id:
        # Resuming our own run: only another live process resuming it too keeps the lock.
        return holder.pid != pid and pid_alive(holder.pid)
    # Another run: its lock holds while its process lives (or is this very process).
    return holder.pid == pid or pid_alive(holder.pid)


def acquire(db: sqlite3.Connection, run_id: str, keys: list[str], pid: int, host: str,
            started_at: str) -> LockOutcome:
    """Lock ``keys`` for ``run_id`` in one immediate transaction (no other writer between
    the check and the take). A lock already held by ``run_id`` (a resumed run) is taken
    back unless a live process of that run still holds it."""
    acquired: list[str] = []
    refused: dict[str, LockHolder] = {}
    taken: dict[str, LockHolder] = {}
    db.execute("BEGIN IMMEDIATE")
    try:
        held = {
            row[0]: LockHolder(*row)
            for row in db.execute("SELECT target_key, run_id, pid, host, started_at FROM locks")
        }
        for key in keys:
            holder = held.get(key)
            if holder is not None:
                if _refuse(holder, run_id, pid, host):
                    refused[key] = holder
                    continue
                if holder.run_id != run_id:
                    taken[key] = holder
            db.execute("INSERT OR REPLACE INTO locks VALUES (?,?,?,?,?)",
                       (key, run_id, pid, host, started_at))
            acquired.append(key)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return LockOutcome(tuple(acquired), refused, taken)


def release(db: sqlite3.Connection, run_id: str, pid: int) -> None:
    db.execute("DELETE FROM locks WHERE run_id=? AND pid=?", (run_id, pid))
