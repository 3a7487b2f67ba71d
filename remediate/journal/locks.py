"""Target locks: two runs sharing a journal never work on the same target at once.

A lock names the run, process and host that holds it. A lock whose process is
gone (same host, pid no longer alive) is stale: the tool crashed or was killed,
and the new run may take it over (the caller warns the operator). A lock held by
another host cannot be checked and is always honoured.

A whole run is held the same way (:func:`run_holder`): by the process its ``runs``
row names while the run is ``running``, and by the processes holding its target
locks. ``resume`` claims a run only when nobody else holds it (:func:`claim_run`).
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
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Killed and not reaped yet by its parent (Linux: state ``Z``): it runs nothing."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


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


def run_holder(db: sqlite3.Connection, run_id: str, pid: int, host: str) -> LockHolder | None:
    """Who else holds ``run_id``: the process of its ``running`` row or of one of its
    locks, if alive on this host (not ``pid`` itself) or on another host (which cannot
    be checked). None: nobody; a process that died left the run to be resumed."""
    holders = [LockHolder("", run_id, row_pid, row_host, started) for row_pid, row_host, started
               in db.execute("SELECT pid, host, started_at FROM runs WHERE run_id=? AND "
                             "status='running'", (run_id,))]
    holders += [LockHolder(*row) for row in db.execute(
        "SELECT target_key, run_id, pid, host, started_at FROM locks WHERE run_id=?",
        (run_id,))]
    for holder in holders:
        if holder.host != host or (holder.pid != pid and pid_alive(holder.pid)):
            return holder
    return None


def claim_run(db: sqlite3.Connection, run_id: str, pid: int, host: str) -> LockHolder | None:
    """Mark ``run_id`` running in process ``pid`` unless someone else holds it; then that
    holder is returned and nothing is written. The check that refuses needs no write lock
    (a live holder may keep it for a while); the claim re-checks in an immediate
    transaction, so two processes cannot both claim the run."""
    holder = run_holder(db, run_id, pid, host)
    if holder is not None:
        return holder
    db.execute("BEGIN IMMEDIATE")
    try:
        holder = run_holder(db, run_id, pid, host)
        if holder is None:
            db.execute("UPDATE runs SET status='running', finished_at=NULL, pid=?, host=? "
                       "WHERE run_id=?", (pid, host, run_id))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return holder
