"""The run journal: SQLite in WAL mode with ``synchronous=FULL``.

What must survive a crash of the tool (or the laptop it runs on) is written here
before it matters: the run and its inputs, each target's facts and phase, each
step's start and end with its outputs, and every mutating call's *intent before
it is sent*, then its result with AWS's request id. ``remediate resume`` reads it
back to continue where the run stopped.

Writes share a transaction until :meth:`Journal.commit`. The executor commits
before it hands any mutating call to the network, so an intent is on disk before
the request leaves (the intents of the calls sent together share one commit), and
when it goes idle with writes older than a second (:meth:`Journal.commit_stale`),
which bounds the fsyncs of a busy run: calls that only read commit nothing. At worst a
crash loses the last moments' "step finished" rows, and those steps are simply
re-run (actions are idempotent and reconcile with AWS's real state).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from remediate.actions.contract import Target
from remediate.errors import UserError
from remediate.journal import locks, schema
from remediate.journal.blobs import Blobs
from remediate.journal.records import (
    CallRecord,
    LockHolder,
    LockOutcome,
    RunRecord,
    StepRecord,
    TargetRecord,
)

_RUN_COLUMNS = ("run_id, playbook_path, playbook_sha256, params, options, targets, dry_run, "
                "status, pid, host, started_at, finished_at, playbook_text")
_STEP_COLUMNS = ("run_id, target_key, pass, step_id, rollback, status, attempts, outputs, error, "
                 "started_at, finished_at")
_STEP_KEY = "run_id, target_key, pass, rollback, step_id"
_CALL_COLUMNS = ("call_id, target_key, step_id, service, operation, params, status, request_id, "
                 "error, response")
# The pass a target is in (a run service, not a target of the run, is always in pass 1).
_PASS = "COALESCE((SELECT pass FROM targets WHERE run_id=? AND target_key=?), 1)"

# Responses larger than this are journaled truncated (the request id is kept apart).
MAX_RESPONSE_CHARS = 65_536


def dumps(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _target(data: Mapping[str, Any]) -> Target:
    return Target(data["kind"], data["id"], data["region"], data.get("account", "default"))


def target_json(target: Target) -> str:
    return dumps({"kind": target.kind, "id": target.id, "region": target.region,
                  "account": target.account})


class JournalError(UserError):
    """The journal file cannot be opened, or is not a journal: one line, exit 1."""


def _open(path: str) -> sqlite3.Connection:
    db: sqlite3.Connection | None = None
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        schema.prepare(db)
    except schema.TooNew as exc:
        assert db is not None
        db.close()
        raise JournalError(f"{path} was written by a newer remediate (journal version "
                           f"{exc.args[0]}; this one reads up to {schema.VERSION}): resume "
                           "it with that version") from None
    except sqlite3.DatabaseError as exc:
        if db is not None:
            db.close()
        if isinstance(exc, sqlite3.OperationalError):  # no such folder, no permission, ...
            raise JournalError(f"cannot open journal {path}: {exc}") from None
        raise JournalError(f"{path} is not a remediate journal: {exc}") from None
    return db


class Journal:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self._db = _open(self.path)
        self._in_tx = False
        self._tx_started = 0.0
        self._blobs = Blobs(self._db, self._write)
        self.commits = 0
        """Transactions committed: each is one fsync of the write-ahead log."""

    @classmethod
    def memory(cls) -> Journal:
        """A journal that lives as long as the object (dry runs, tests)."""
        return cls(":memory:")

    # ---- transactions --------------------------------------------------------------

    def _write(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        if not self._in_tx:
            self._db.execute("BEGIN")
            self._in_tx = True
            self._tx_started = time.monotonic()
        return self._db.execute(sql, tuple(args))

    def commit(self) -> None:
        if self._in_tx:
            self._db.execute("COMMIT")
            self._in_tx = False
            self.commits += 1

    def commit_stale(self, age: float = 1.0) -> None:
        """Commit if the open transaction is older than ``age`` real seconds."""
        if self._in_tx and time.monotonic() - self._tx_started >= age:
            self.commit()

    def close(self) -> None:
        self.commit()
        self._db.close()

    # ---- runs --------------------------------------------------------------------

    def begin_run(self, run: RunRecord) -> None:
        self._write(
            f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (run.run_id, run.playbook_path, run.playbook_sha256, dumps(run.params),
             dumps(run.options), dumps([json.loads(target_json(t)) for t in run.targets]),
             int(run.dry_run), run.status, run.pid, run.host, run.started_at, run.finished_at,
             run.playbook_text))
        self._write("UPDATE runs SET process_start=? WHERE run_id=?",
                    (locks.process_start(run.pid), run.run_id))
        for target in run.targets:
            self._write("INSERT INTO targets (run_id, target_key, target, phase, updated_at) "
                        "VALUES (?,?,?,?,?)",
                        (run.run_id, target.key, target_json(target), "pending",
                         run.started_at))
        self.commit()

    def set_playbook(self, run_id: str, text: str, sha256: str,
                     params: Mapping[str, Any]) -> None:
        """The run goes on with this playbook and these parameter values (``resume`` with
        an edited playbook)."""
        self._write("UPDATE runs SET playbook_text=?, playbook_sha256=?, params=? "
                    "WHERE run_id=?", (text, sha256, dumps(dict(params)), run_id))
        self.commit()

    def set_run_status(self, run_id: str, status: str, at: datetime | None = None) -> None:
        self._write("UPDATE runs SET status=?, finished_at=?, pid=?, host=?, process_start=? "
                    "WHERE run_id=?", (status, at.isoformat() if at else None, self.pid,
                                       self.host, locks.process_start(self.pid), run_id))
        self.commit()

    def run(self, run_id: str | None = None) -> RunRecord:
        """A run by id; without one, the latest run that did not finish (interrupted,
        crashed, or still running), else the latest. KeyError when there is none.

        Runs share the default journal, so "the latest" alone could be a run that
        finished after an interrupted one, and resuming it would leave the other undone.
        """
        if run_id is None:
            row = self._db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY "
                "(status != 'finished' AND dry_run = 0) DESC, rowid DESC LIMIT 1").fetchone()
        else:
            row = self._db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id=?",
                                   (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"no run {run_id} in {self.path}" if run_id else
                           f"no run in {self.path}")
        (rid, path, sha, params, options, targets, dry, status, pid, host, started,
         finished, text) = row
        return RunRecord(rid, path, sha, json.loads(params), json.loads(options),
                         tuple(_target(t) for t in json.loads(targets)), bool(dry), status,
                         pid, host, started, finished, text)

    def unfinished_runs(self) -> list[str]:
        """Ids of the runs that did not finish (interrupted, crashed, still running),
        oldest first."""
        return [row[0] for row in self._db.execute(
            "SELECT run_id FROM runs WHERE status != 'finished' AND dry_run = 0 "
            "ORDER BY rowid")]

    def set_state(self, run_id: str, key: str, value: Any) -> None:
        self._write("INSERT OR REPLACE INTO run_state VALUES (?,?,?)", (run_id, key, dumps(value)))

    def state(self, run_id: str, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM run_state WHERE run_id=? AND key=?",
                               (run_id, key)).fetchone()
        return default if row is None else json.loads(row[0])

    # ---- targets and steps ---------------------------------------------------------

    def set_target(self, run_id: str, target: Target, at: datetime, *, phase: str,
                   status: str | None = None, error: str | None = None,
                   facts: Mapping[str, Any] | None = None, new_pass: bool = False,
                   rollback_reason: str | None = None) -> None:
        """``new_pass``: the target starts again from its first step; its step and call
        rows so far are history (see :mod:`remediate.journal.schema`).
        ``rollback_reason``: why the rollback it enters runs (kept until the next one)."""
        if facts is not None:
            self._write("UPDATE targets SET facts=? WHERE run_id=? AND target_key=?",
                        (dumps(facts), run_id, target.key))
        if rollback_reason is not None:
            self._write("UPDATE targets SET rollback_reason=? WHERE run_id=? AND target_key=?",
                        (rollback_reason, run_id, target.key))
        self._write("UPDATE targets SET phase=?, status=?, error=?, updated_at=?, "
                    "pass=pass+? WHERE run_id=? AND target_key=?",
                    (phase, status, error, at.isoformat(), int(new_pass), run_id, target.key))

    def step_started(self, run_id: str, target: Target, step_id: str, rollback: bool,
                     attempt: int, at: datetime) -> None:
        self._write(
            f"INSERT INTO steps ({_STEP_COLUMNS}) VALUES (?,?,{_PASS},?,?,?,?,?,?,?,?) "
            f"ON CONFLICT ({_STEP_KEY}) DO UPDATE SET status='running', "
            "attempts=excluded.attempts, error=NULL, finished_at=NULL",
            (run_id, target.key, run_id, target.key, step_id, int(rollback), "running",
             attempt, None, None, at.isoformat(), None))

    def step_finished(self, run_id: str, target: Target, step_id: str, rollback: bool, *,
                      status: str, attempts: int, at: datetime,
                      outputs: Mapping[str, Any] | None = None,
                      error: str | None = None) -> None:
        self._write(
            f"INSERT INTO steps ({_STEP_COLUMNS}) VALUES (?,?,{_PASS},?,?,?,?,?,?,?,?) "
            f"ON CONFLICT ({_STEP_KEY}) DO UPDATE SET status=excluded.status, "
            "attempts=excluded.attempts, outputs=excluded.outputs, error=excluded.error, "
            "finished_at=excluded.finished_at",
            (run_id, target.key, run_id, target.key, step_id, int(rollback), status, attempts,
             dumps(dict(outputs or {})), error, at.isoformat(), at.isoformat()))

    def targets(self, run_id: str) -> dict[str, TargetRecord]:
        """Every target of the run, with the step rows of its current pass (and, for
        reports, those of the latest pass that has any)."""
        passes: dict[str, dict[int, list[StepRecord]]] = {}
        for key, number, step_id, rollback, status, attempts, outputs, error, started, \
                finished in self._db.execute(
                    "SELECT target_key, pass, step_id, rollback, status, attempts, outputs, "
                    "error, started_at, finished_at FROM steps WHERE run_id=? ORDER BY rowid",
                    (run_id,)):
            passes.setdefault(key, {}).setdefault(number, []).append(StepRecord(
                step_id, bool(rollback), status, attempts, _loads(outputs) or {}, error,
                started, finished))
        mutated = set(self._db.execute(
            "SELECT DISTINCT target_key, pass FROM calls WHERE run_id=? AND rollback=0 "
            "AND status != 'error'", (run_id,)))
        out: dict[str, TargetRecord] = {}
        for key, target, phase, status, facts, error, number, reason in self._db.execute(
            "SELECT target_key, target, phase, status, facts, error, pass, rollback_reason "
            "FROM targets WHERE run_id=? ORDER BY rowid", (run_id,)
        ):
            rows = passes.get(key, {})
            shown = rows[max(p for p in rows if p <= number)] if any(
                p <= number for p in rows) else []
            out[key] = TargetRecord(_target(json.loads(target)), phase, status, _loads(facts),
                                    error, tuple(rows.get(number, ())),
                                    (key, number) in mutated, number, tuple(shown), reason)
        return out

    # ---- calls -------------------------------------------------------------------

    def call_intent(self, run_id: str, target_key: str, step_id: str, rollback: bool,
                    service: str, operation: str, params: Mapping[str, Any],
                    at: datetime, *, merged: bool = False) -> int:
        """Record a mutating call about to be sent; returns its id for the result.
        ``merged``: it goes in one request with other targets' calls (what they share is
        kept once)."""
        cursor = self._write(
            "INSERT INTO calls (run_id, target_key, step_id, rollback, service, operation, "
            f"params, status, sent_at, pass) VALUES (?,?,?,?,?,?,?,?,?,{_PASS})",
            (run_id, target_key, step_id, int(rollback), service, operation,
             dumps(self._blobs.pack_shared(dict(params)) if merged
                   else self._blobs.pack(dict(params))),
             "sent", at.isoformat(), run_id, target_key))
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def call_result(self, call_id: int, at: datetime, *, request_id: str | None,
                    error: str | None = None, response: Mapping[str, Any] | None = None,
                    uncertain: bool = False) -> None:
        """``uncertain``: the call failed in a way (a timeout, a 5xx) that does not say
        whether AWS did it; it then counts as done for rollback decisions."""
        self.call_results((call_id,), at, request_id=request_id, error=error,
                          response=response, uncertain=uncertain)

    def call_results(self, call_ids: Sequence[int], at: datetime, *,
                     request_id: str | None, error: str | None = None,
                     response: Mapping[str, Any] | None = None,
                     uncertain: bool = False) -> None:
        """The result of one request, for each of the calls merged into it: a long answer
        is stored once and their rows refer to it (see :mod:`remediate.journal.blobs`)."""
        text = None
        if response is not None:
            body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
            text = dumps(self._blobs.pack(body))
            if len(text) > MAX_RESPONSE_CHARS:
                text = dumps({"truncated": dumps(body)[:MAX_RESPONSE_CHARS]})
            if len(call_ids) > 1:
                text = self._blobs.answer(text)
        status = "unknown" if uncertain else "error" if error else "ok"
        for call_id in call_ids:
            self._write("UPDATE calls SET status=?, request_id=?, error=?, response=?, "
                        "finished_at=? WHERE call_id=?",
                        (status, request_id, error, text, at.isoformat(), call_id))

    def step_sent(self, run_id: str, target_key: str, step_id: str, operation: str,
                  any_pass: bool = False) -> bool:
        """Whether a call of ``operation`` was journaled for this target's step in its
        current pass (any attempt, rollback or not); ``any_pass``: in any pass of the run
        (a target started again keeps what an earlier pass made, its backup say)."""
        if any_pass:
            return self._db.execute(
                "SELECT 1 FROM calls WHERE run_id=? AND target_key=? AND step_id=? AND "
                "operation=? LIMIT 1", (run_id, target_key, step_id, operation)).fetchone() \
                is not None
        return self._db.execute(
            "SELECT 1 FROM calls WHERE run_id=? AND target_key=? AND step_id=? AND "
            f"operation=? AND pass={_PASS} LIMIT 1",
            (run_id, target_key, step_id, operation, run_id, target_key)).fetchone() \
            is not None

    def step_unanswered(self, run_id: str, target_key: str, step_id: str,
                        operation: str) -> bool:
        """Whether a call of ``operation`` journaled for this target's step (in its current
        pass) never got its reply: ``unknown`` (a 5xx, a timeout) or still ``sent`` (the run
        died waiting)."""
        return self._db.execute(
            "SELECT 1 FROM calls WHERE run_id=? AND target_key=? AND step_id=? AND "
            f"operation=? AND status IN ('sent', 'unknown') AND pass={_PASS} LIMIT 1",
            (run_id, target_key, step_id, operation, run_id, target_key)).fetchone() \
            is not None

    def step_answers(self, run_id: str, target_key: str, step_id: str,
                     operation: str) -> list[Any]:
        """The answers AWS gave this target's step's ``operation`` calls in its current
        pass, oldest first (as journaled: a long one is ``{"truncated": "<its JSON text,
        cut>"}``)."""
        return [self._blobs.unpack(_loads(text)) for (text,) in self._db.execute(
            "SELECT response FROM calls WHERE run_id=? AND target_key=? AND step_id=? AND "
            f"operation=? AND status='ok' AND pass={_PASS} ORDER BY call_id",
            (run_id, target_key, step_id, operation, run_id, target_key))]

    def step_in_flight(self, run_id: str, target_key: str, step_id: str,
                       rollback: bool) -> bool:
        """Whether this target's step (in its current pass) was started and never finished
        (the run stopped, or died, while it ran)."""
        return self._db.execute(
            "SELECT 1 FROM steps WHERE run_id=? AND target_key=? AND step_id=? AND "
            f"rollback=? AND status='running' AND pass={_PASS}",
            (run_id, target_key, step_id, int(rollback), run_id, target_key)).fetchone() \
            is not None

    def calls(self, run_id: str, target_key: str | None = None) -> list[CallRecord]:
        sql = f"SELECT {_CALL_COLUMNS} FROM calls WHERE run_id=?"
        args: tuple[str, ...] = (run_id,)
        if target_key is not None:
            sql += " AND target_key=?"
            args += (target_key,)
        return [self._call(row) for row in self._db.execute(sql + " ORDER BY call_id", args)]

    def latest_calls(self, run_id: str, key_prefix: str) -> dict[str, CallRecord]:
        """The latest call journaled under each target key that starts with ``key_prefix``
        (``claim:``: each target's latest claim write or removal), by that key."""
        rows = self._db.execute(
            f"SELECT {_CALL_COLUMNS} FROM calls WHERE call_id IN (SELECT MAX(call_id) "
            "FROM calls WHERE run_id=? AND substr(target_key, 1, ?)=? GROUP BY target_key)",
            (run_id, len(key_prefix), key_prefix))
        return {call.target_key: call for call in map(self._call, rows)}

    def _call(self, row: tuple[Any, ...]) -> CallRecord:
        """A row of ``SELECT {_CALL_COLUMNS} FROM calls``."""
        cid, key, step, service, operation, params, status, request_id, error, response = row
        return CallRecord(cid, key, step, service, operation,
                          self._blobs.unpack(json.loads(params)), status, request_id, error,
                          self._blobs.unpack(_loads(response)))

    # ---- run services (the rescue pool, ...) --------------------------------------

    def service_used(self, run_id: str, account: str, region: str, cls: str) -> None:
        self._write("INSERT OR IGNORE INTO services VALUES (?,?,?,?)",
                    (run_id, account, region, cls))

    def services(self, run_id: str) -> list[tuple[str, str, str]]:
        rows = self._db.execute(
            "SELECT account, region, cls FROM services WHERE run_id=? ORDER BY rowid", (run_id,))
        return [(account, region, cls) for account, region, cls in rows]

    # ---- target locks ------------------------------------------------------------

    def lock_targets(self, run_id: str, keys: Iterable[str], started_at: str) -> LockOutcome:
        self.commit()
        return locks.acquire(self._db, run_id, list(keys), self.pid, self.host, started_at)

    def release_locks(self, run_id: str) -> None:
        self.commit()
        locks.release(self._db, run_id, self.pid)

    def claim_run(self, run_id: str) -> LockHolder | None:
        """Make this process the one running ``run_id`` (a resume), unless another live
        process, or another host, holds it: that holder then, and nothing is written."""
        self.commit()
        return locks.claim_run(self._db, run_id, self.pid, self.host)
