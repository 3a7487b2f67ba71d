"""`run --retry-failed`: the targets an earlier run did not fix, from its report or journal.

Rundeck's "retry failed nodes", for a fleet: after a run, run again (the same
playbook, or the next route) on the targets that *failed*, were *rolled back*
or were *interrupted* in it, and on those a step *refused* leaving them as they were
(their capacity could not be held, say: running again later may work; such a
target is refused with a failed step). Targets it fixed, refused otherwise (a human
must act first) or skipped (already healthy) are left alone. The earlier
run is named by what the operator has at hand: its JSON report (``--report
json:PATH``), its journal (the journal's latest run), or its run id (in the
``--journal`` of this command).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from dataclasses import dataclass
from typing import Any, Final

from remediate.actions.contract import Target
from remediate.errors import UserError

RETRIED: Final = ("failed", "rolled_back", "interrupted")
SQLITE_MAGIC: Final = b"SQLite format 3\x00"
RUN_ID: Final = re.compile(r"r\d{8}-\d{6}-[0-9a-f]{6}")


class RetryError(UserError):
    pass


@dataclass(frozen=True)
class RetrySet:
    """The targets to retry, and the run they come from."""

    source: str  # as the operator named it
    run_id: str
    targets: tuple[Target, ...]

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(t.key for t in self.targets)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(sorted({t.id for t in self.targets}))

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(sorted({t.region for t in self.targets}))

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(t.kind for t in self.targets)


def failed_targets(source: str, journal_path: str) -> RetrySet:
    """What ``--retry-failed SOURCE`` selects: SOURCE is a JSON report, a journal, or a
    run id in ``journal_path``. A RetryError (one line) if it is none of these, cannot be
    read, or names no target to retry."""
    if os.path.isfile(source):
        chosen = _from_journal(source, source, None) if _is_sqlite(source) \
            else _from_report(source)
    elif RUN_ID.fullmatch(source):
        if not os.path.isfile(journal_path):
            raise RetryError(f"--retry-failed {source}: no journal at {journal_path} to find "
                             "that run in (--journal names it)")
        chosen = _from_journal(source, journal_path, source)
    else:
        raise RetryError(f"--retry-failed {source}: no such file, and not a run id "
                         "(expected a JSON report written by --report json:PATH, a journal, "
                         "or a run id such as r20240719-053000-a1b2c3)")
    if not chosen.targets:
        raise RetryError(f"--retry-failed {source}: no target failed, was rolled back or was "
                         f"interrupted in run {chosen.run_id}: nothing to retry")
    return chosen


def _is_sqlite(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError as exc:
        raise RetryError(f"--retry-failed {path}: cannot read it ({exc.strerror})") from None


def _from_report(path: str) -> RetrySet:
    expected = ("expected the JSON report of a run (--report json:PATH) or a journal "
                "(--journal)")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise RetryError(f"--retry-failed {path}: cannot read it ({reason})") from None
    except json.JSONDecodeError as exc:
        raise RetryError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); "
                         f"{expected}") from None
    if not isinstance(data, dict) or not isinstance(data.get("targets"), list) \
            or not isinstance(data.get("run_id"), str):
        raise RetryError(f"--retry-failed {path}: not a remediate report (no run_id and "
                         f"targets); {expected}")
    if data.get("dry_run"):
        raise RetryError(f"--retry-failed {path}: the report of a dry run (run "
                         f"{data['run_id']}): nothing was run, so nothing failed")
    targets = []
    for index, item in enumerate(data["targets"]):
        if not isinstance(item, dict):
            raise RetryError(f"--retry-failed {path}: targets[{index}]: expected an object")
        steps = item.get("steps")
        failed = isinstance(steps, list) and any(
            isinstance(s, dict) and s.get("status") == "failed" and not s.get("rollback")
            for s in steps)
        if retried(item.get("status"), failed):
            targets.append(_report_target(path, index, item))
    return RetrySet(path, data["run_id"], tuple(targets))


def _report_target(path: str, index: int, item: dict[str, Any]) -> Target:
    values = [item.get(key) for key in ("kind", "id", "region", "account")]
    strings = [v for v in values if isinstance(v, str) and v]
    if len(strings) != len(values):
        raise RetryError(f"--retry-failed {path}: targets[{index}]: expected kind, id, region "
                         "and account (strings), as `--report json:PATH` writes them")
    return Target(*strings)


def _from_journal(source: str, path: str, run_id: str | None) -> RetrySet:
    from remediate.journal import Journal
    from remediate.journal.store import JournalError

    try:
        journal = Journal(path)
    except (JournalError, sqlite3.DatabaseError) as exc:
        raise RetryError(f"--retry-failed {source}: not a journal remediate can read "
                         f"({exc})") from None
    try:
        try:
            run = journal.run(run_id)
        except KeyError:
            where = f"no run {run_id}" if run_id else "no run"
            raise RetryError(f"--retry-failed {source}: {path} holds {where}") from None
        if run.dry_run:
            raise RetryError(f"--retry-failed {source}: run {run.run_id} was a dry run: "
                             "nothing was run, so nothing failed")
        records = journal.targets(run.run_id)
    finally:
        journal.close()
    return RetrySet(source, run.run_id, tuple(
        record.target for record in records.values() if retried(record.status, any(
            s.status == "failed" and not s.rollback for s in record.steps))))


def retried(status: Any, step_failed: bool) -> bool:
    """Whether a target that ended with ``status`` is retried; ``step_failed``: one of its
    steps (not a rollback step) failed, which for a refused target means a step refused
    it leaving it as it was (:func:`remediate.executor.target_runner.refusal`)."""
    return status in RETRIED or (status == "refused" and step_failed)
