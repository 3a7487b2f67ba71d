"""The journal's tables, and the in-place migration of journals older versions wrote.

Version 2 scopes a target's step and call rows to its **pass**: a target rolled
back because the run was stopped starts again from its first step in a new pass
(``targets.pass`` + 1), so rows of an earlier pass are history and never taken
for this pass's results (a rollback step that succeeded in pass 1 says nothing
about the rollback of pass 2). It also keeps the playbook's text
(``runs.playbook_text``), so ``resume`` runs the playbook the run started with.

Version 3 keeps why a target is rolling back (``targets.rollback_reason``: the failed
step, or the operator's stop) apart from its latest error: a resume interrupted before
it got back to the target used to overwrite that error ("not started: the run was
interrupted"), and the rollback finished later then gave that as the target's reason.
It also keeps when the process holding a run or a lock started (``process_start``), so
a pid reused since by another process is not taken for it (:mod:`remediate.journal.locks`).

Version 4 keeps long values once (``blobs``, :mod:`remediate.journal.blobs`): a script
sent to many targets, a merged call's answer. Its rows refer to them by hash; rows of an
older journal hold their values whole and read as before.

Older journals are migrated when they are opened, in one transaction (a crash mid-way
leaves them as they were); a version-2 one gets the columns (empty: its rollbacks give
their latest error as the reason, and its pids are judged alone, as before), a version-3
one the ``blobs`` table. A version-1 journal (``PRAGMA user_version`` 0) becomes version 4
as well: its rows
become pass 1.
Version 1 reused rows across restarts, so an unfinished target whose rows may be
stale (one that was restarted, or is rolling back) gets a fresh pass that rolls it
back from the rollback's first step (rollback steps read AWS's state and finish
from wherever the target is); a target stopped for a restart starts pass 2.
"""

from __future__ import annotations

import sqlite3

VERSION = 4


class TooNew(Exception):
    """The journal was written by a newer remediate (its schema version, in ``args[0]``)."""


TABLES = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, playbook_path TEXT NOT NULL, playbook_sha256 TEXT NOT NULL,
    params TEXT NOT NULL, options TEXT NOT NULL, targets TEXT NOT NULL,
    dry_run INTEGER NOT NULL, status TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL,
    started_at TEXT NOT NULL, finished_at TEXT, playbook_text TEXT, process_start INTEGER);
CREATE TABLE IF NOT EXISTS run_state (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (run_id, key));
CREATE TABLE IF NOT EXISTS targets (
    run_id TEXT NOT NULL, target_key TEXT NOT NULL, target TEXT NOT NULL,
    phase TEXT NOT NULL, status TEXT, facts TEXT, error TEXT, updated_at TEXT NOT NULL,
    pass INTEGER NOT NULL DEFAULT 1, rollback_reason TEXT,
    PRIMARY KEY (run_id, target_key));
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL, target_key TEXT NOT NULL, pass INTEGER NOT NULL, step_id TEXT NOT NULL,
    rollback INTEGER NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
    outputs TEXT, error TEXT, started_at TEXT NOT NULL, finished_at TEXT,
    PRIMARY KEY (run_id, target_key, pass, rollback, step_id));
CREATE TABLE IF NOT EXISTS calls (
    call_id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, target_key TEXT NOT NULL,
    step_id TEXT NOT NULL, rollback INTEGER NOT NULL, service TEXT NOT NULL,
    operation TEXT NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL, request_id TEXT,
    error TEXT, response TEXT, sent_at TEXT NOT NULL, finished_at TEXT,
    pass INTEGER NOT NULL DEFAULT 1);
CREATE INDEX IF NOT EXISTS calls_by_target ON calls (run_id, target_key);
CREATE TABLE IF NOT EXISTS services (
    run_id TEXT NOT NULL, account TEXT NOT NULL, region TEXT NOT NULL, cls TEXT NOT NULL,
    PRIMARY KEY (run_id, account, region, cls));
CREATE TABLE IF NOT EXISTS blobs (hash TEXT PRIMARY KEY, text TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS locks (
    target_key TEXT PRIMARY KEY, run_id TEXT NOT NULL, pid INTEGER NOT NULL,
    host TEXT NOT NULL, started_at TEXT NOT NULL, process_start INTEGER);
"""

# Version 1 -> 2. Steps get ``pass`` in their primary key, so that table is rebuilt.
_TO_2 = """
ALTER TABLE runs ADD COLUMN playbook_text TEXT;
ALTER TABLE targets ADD COLUMN pass INTEGER NOT NULL DEFAULT 1;
ALTER TABLE calls ADD COLUMN pass INTEGER NOT NULL DEFAULT 1;
CREATE TABLE steps_v2 (
    run_id TEXT NOT NULL, target_key TEXT NOT NULL, pass INTEGER NOT NULL, step_id TEXT NOT NULL,
    rollback INTEGER NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
    outputs TEXT, error TEXT, started_at TEXT NOT NULL, finished_at TEXT,
    PRIMARY KEY (run_id, target_key, pass, rollback, step_id));
INSERT INTO steps_v2 SELECT run_id, target_key, 1, step_id, rollback, status, attempts,
    outputs, error, started_at, finished_at FROM steps ORDER BY rowid;
DROP TABLE steps;
ALTER TABLE steps_v2 RENAME TO steps;
-- Stopped for a restart: pass 1's rows are the rolled-back attempt's.
UPDATE targets SET pass = 2 WHERE phase = 'restart';
-- Rolling back because the operator stopped the run (version 1 said so in the error).
UPDATE targets SET phase = 'stop-rollback'
    WHERE phase = 'rollback' AND error LIKE 'interrupted by the operator%';
-- Rows that may be stale: roll back again from the first rollback step, in pass 2.
UPDATE targets SET pass = 2, phase = CASE phase WHEN 'steps' THEN 'stop-rollback' ELSE phase END
    WHERE phase IN ('steps', 'rollback', 'stop-rollback') AND EXISTS (
        SELECT 1 FROM calls WHERE calls.run_id = targets.run_id
        AND calls.target_key = targets.target_key AND calls.rollback = 1);
"""


# Version 2 -> 3: columns added (table, column, type).
_TO_3 = (("targets", "rollback_reason", "TEXT"), ("runs", "process_start", "INTEGER"),
         ("locks", "process_start", "INTEGER"))


def prepare(db: sqlite3.Connection) -> None:
    """Create the tables of a new journal, or migrate an older one in place."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > VERSION:
        raise TooNew(version)
    if version == VERSION:  # the usual case: no write, so no wait on a run writing it
        return
    db.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then see it done
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > VERSION:
            raise TooNew(version)
        if version == 0 and _has_table(db, "steps") and not _has_column(db, "steps", "pass"):
            for statement in _statements(_TO_2):
                db.execute(statement)
        for table, column, kind in _TO_3:
            if _has_table(db, table) and not _has_column(db, table, column):
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        for statement in _statements(TABLES):
            db.execute(statement)
        if version < VERSION:
            db.execute(f"PRAGMA user_version = {VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    """The script's statements (``executescript`` would commit the open transaction)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                      (name,)).fetchone() is not None


def _has_column(db: sqlite3.Connection, table: str, column: str) -> bool:
    return any(row[1] == column for row in db.execute(f"PRAGMA table_info({table})"))
