"""Target locks: two runs sharing a journal never work on the same target at once.

A lock names the run, process and host that holds it. A lock whose process is
gone (same host, pid no longer alive) is stale: the tool crashed or was killed,
and the new run may take it over (the caller warns the operator). A lock held by
another host cannot be checked and is always honoured.

A whole run is held the same way (:func:`run_holder`): by the process its ``runs``
row names while the run is ``running``, and by the processes holding its target
locks. ``resume`` claims a run only when nobody else holds it (:func:`claim_run`).

A pid is reused once its process is gone (they wrap at 32,768 on many Linux hosts,
and start over after a reboot): a run killed, then a `resume` refused because some
unrelated process got the dead run's pid ("run ... is still going"), with no way out
but editing the journal. So each row also keeps when its process started
(:func:`process_start`, where the system shows it), and a process with the same pid
that started at another time is not the holder.
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


def process_start(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (Linux), to tell a reused pid
    from the process that wrote a row; None where the system does not say."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rpartition(")")[2].split()
    except OSError:
        return None
    # Field 22 of stat(5); fields[0] is field 3 (the state).
    return int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None


def holder_alive(pid: int, started: int | None) -> bool:
    """Whether the process that wrote a row (``pid``, which started at ``started``; None:
    unknown) still runs: alive, and not another process that got its pid since."""
    if not pid_alive(pid):
        return False
    now = None if started is None else process_start(pid)
    return now is None or now == started


def _refuse(holder: LockHolder, started: int | None, run_id: str, pid: int,
            host: str) -> bool:
    """Whether ``holder`` (its process started at ``started``) keeps its lock against
    ``run_id`` in process ``pid``."""
    if holder.host != host:
        return True  # cannot see that process: honour the lock
    if holder.run_id == run_id:
        # Resuming our own run: only another live process resuming it too keeps the lock.
        return holder.pid != pid and holder_alive(holder.pid, started)
    # Another run: its lock holds while its process lives (or is this very process).
    return holder.pid == pid or holder_alive(holder.pid, started)


def acquire(db: sqlite3.Connection, run_id: str, keys: list[str], pid: int, host: str,
            started_at: str) -> LockOutcome:
    """Lock ``keys`` for ``run_id`` in one immediate transaction (no other writer between
    the check and the take). A lock already held by ``run_id`` (a resumed run) is taken
    back unless a live process of that run still holds it."""
    acquired: list[str] = []
    refused: dict[str, LockHolder] = {}
    taken: dict[str, LockHolder] = {}
    mine = process_start(pid)
    db.execute("BEGIN IMMEDIATE")
    try:
        held = {row[0]: (LockHolder(*row[:5]), row[5]) for row in db.execute(
            "SELECT target_key, run_id, pid, host, started_at, process_start FROM locks")}
        for key in keys:
            holder, started = held.get(key, (None, None))
            if holder is not None:
                if _refuse(holder, started, run_id, pid, host):
                    refused[key] = holder
                    continue
                if holder.run_id != run_id:
                    taken[key] = holder
            db.execute("INSERT OR REPLACE INTO locks (target_key, run_id, pid, host, "
                       "started_at, process_start) VALUES (?,?,?,?,?,?)",
                       (key, run_id, pid, host, started_at, mine))
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
    holders = [(LockHolder("", run_id, row_pid, row_host, started), process)
               for row_pid, row_host, started, process in db.execute(
                   "SELECT pid, host, started_at, process_start FROM runs WHERE run_id=? AND "
                   "status='running'", (run_id,))]
    holders += [(LockHolder(*row[:5]), row[5]) for row in db.execute(
        "SELECT target_key, run_id, pid, host, started_at, process_start FROM locks "
        "WHERE run_id=?", (run_id,))]
    for holder, process in holders:
        if holder.host != host or (holder.pid != pid and holder_alive(holder.pid, process)):
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
            db.execute("UPDATE runs SET status='running', finished_at=NULL, pid=?, host=?, "
                       "process_start=? WHERE run_id=?", (pid, host, process_start(pid), run_id))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return holder
