"""The journal's passes (step and call rows scoped to a target's attempt), the playbook
text it keeps, and journals written by the previous version: migrated in place."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from remediate.actions.contract import Target
from remediate.journal import Journal, RunRecord
from remediate.journal.store import JournalError

AT = datetime(2024, 7, 19, 6, 0, tzinfo=UTC)
I1, I2, I3, I4, I5 = (Target("ec2-instance", f"i-{n}", "us-east-1") for n in range(1, 6))


def run_record(text: str | None = "version: 1\n") -> RunRecord:
    return RunRecord("run-1", "/pb/swap.yaml", "ab" * 32, {"rescue_ami": "ami-1"}, {},
                     (I1, I2), False, "running", 1, "host-a", AT.isoformat(),
                     playbook_text=text)


def test_a_new_pass_leaves_the_earlier_passs_rows_behind(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "run.journal")
    journal.begin_run(run_record())
    journal.step_finished("run-1", I1, "stop", False, status="succeeded", attempts=1, at=AT)
    journal.call_intent("run-1", I1.key, "stop", False, "ec2", "StopInstances", {}, AT)
    journal.step_finished("run-1", I1, "put_back_settings", True, status="succeeded",
                          attempts=1, at=AT)
    journal.set_target("run-1", I1, AT, phase="restart", status="interrupted", new_pass=True)
    journal.commit()

    restarted = journal.targets("run-1")[I1.key]

    assert (restarted.pass_number, restarted.steps, restarted.mutated) == (2, (), False)
    assert not journal.step_sent("run-1", I1.key, "stop", "StopInstances")
    # Reports show the attempt it was rolled back from until the new one has rows.
    assert [(s.step_id, s.rollback) for s in restarted.last_steps] == [
        ("stop", False), ("put_back_settings", True)]

    journal.step_started("run-1", I1, "put_back", True, 1, AT)
    journal.commit()
    again = journal.targets("run-1")[I1.key]
    assert again.step("put_back_settings", rollback=True) is None
    assert [s.step_id for s in again.steps] == [s.step_id for s in again.last_steps] == [
        "put_back"]
    assert journal.targets("run-1")[I2.key].pass_number == 1


def test_the_playbook_text_is_kept_and_can_be_replaced(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "run.journal")
    journal.begin_run(run_record("version: 1\n# as it started\n"))
    assert journal.run("run-1").playbook_text == "version: 1\n# as it started\n"

    journal.set_playbook("run-1", "version: 1\n# edited\n", "cd" * 32, {"rescue_ami": "ami-2"})

    run = Journal(tmp_path / "run.journal").run("run-1")
    assert (run.playbook_text, run.playbook_sha256, run.params) == (
        "version: 1\n# edited\n", "cd" * 32, {"rescue_ami": "ami-2"})


# The schema remediate wrote before passes (journal version 1, PRAGMA user_version 0).
VERSION_1 = """
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY, playbook_path TEXT NOT NULL, playbook_sha256 TEXT NOT NULL,
    params TEXT NOT NULL, options TEXT NOT NULL, targets TEXT NOT NULL,
    dry_run INTEGER NOT NULL, status TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL,
    started_at TEXT NOT NULL, finished_at TEXT);
CREATE TABLE run_state (run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (run_id, key));
CREATE TABLE targets (
    run_id TEXT NOT NULL, target_key TEXT NOT NULL, target TEXT NOT NULL,
    phase TEXT NOT NULL, status TEXT, facts TEXT, error TEXT, updated_at TEXT NOT NULL,
    PRIMARY KEY (run_id, target_key));
CREATE TABLE steps (
    run_id TEXT NOT NULL, target_key TEXT NOT NULL, step_id TEXT NOT NULL,
    rollback INTEGER NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
    outputs TEXT, error TEXT, started_at TEXT NOT NULL, finished_at TEXT,
    PRIMARY KEY (run_id, target_key, rollback, step_id));
CREATE TABLE calls (
    call_id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, target_key TEXT NOT NULL,
    step_id TEXT NOT NULL, rollback INTEGER NOT NULL, service TEXT NOT NULL,
    operation TEXT NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL, request_id TEXT,
    error TEXT, response TEXT, sent_at TEXT NOT NULL, finished_at TEXT);
CREATE INDEX calls_by_target ON calls (run_id, target_key);
CREATE TABLE services (run_id TEXT NOT NULL, account TEXT NOT NULL, region TEXT NOT NULL,
    cls TEXT NOT NULL, PRIMARY KEY (run_id, account, region, cls));
CREATE TABLE locks (target_key TEXT PRIMARY KEY, run_id TEXT NOT NULL, pid INTEGER NOT NULL,
    host TEXT NOT NULL, started_at TEXT NOT NULL);
"""
STOPPED = "interrupted by the operator before step repair"


def version_1_journal(path: Path) -> None:
    """A version-1 journal of a run interrupted, resumed and interrupted again:

    - i-1 was rolled back after a Ctrl-C, waiting to start again (``restart``);
    - i-2 was rolled back after a Ctrl-C, started again, and its second rollback was
      cut short: its ``put_back_settings`` row is the *first* rollback's;
    - i-3 was started again and is mid-way through its steps (stale rows ahead of it);
    - i-4 is in its first rollback, after a failure (its rows are its own);
    - i-5 is mid-way through its steps, never rolled back (its rows are its own).
    """
    target = '{"account": "default", "id": "%s", "kind": "ec2-instance", "region": "us-east-1"}'
    at = AT.isoformat()
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.executescript(VERSION_1)
        db.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                   ("run-1", "/pb/swap.yaml", "ab" * 32, "{}", "{}", "[]", 0, "interrupted",
                    1, "host-a", at, at))
        for key, phase, error in ((I1, "restart", f"{STOPPED}; rolled back to where it was"),
                                  (I2, "rollback", STOPPED), (I3, "steps", None),
                                  (I4, "rollback", "step repair failed: exit 1"),
                                  (I5, "steps", None)):
            db.execute("INSERT INTO targets VALUES (?,?,?,?,?,?,?,?)",
                       ("run-1", key.key, target % key.id, phase, "interrupted", "{}", error, at))
        for key, step, rollback, status in (
                (I1, "stop", 0, "succeeded"), (I1, "put_back_settings", 1, "succeeded"),
                (I2, "stop", 0, "succeeded"), (I2, "put_back", 1, "running"),
                (I2, "put_back_settings", 1, "succeeded"),
                (I3, "stop", 0, "succeeded"), (I3, "detach", 0, "succeeded"),
                (I4, "repair", 0, "failed"), (I4, "put_back", 1, "succeeded"),
                (I5, "stop", 0, "succeeded")):
            db.execute("INSERT INTO steps VALUES (?,?,?,?,?,?,?,?,?,?)",
                       ("run-1", key.key, step, rollback, status, 1, "{}", None, at, at))
        for key, step, rollback, operation in (
                (I1, "put_back", 1, "AttachVolume"), (I2, "put_back", 1, "AttachVolume"),
                (I2, "stop", 0, "StopInstances"), (I3, "put_back", 1, "AttachVolume"),
                (I3, "stop", 0, "StopInstances"), (I4, "put_back", 1, "AttachVolume"),
                (I5, "stop", 0, "StopInstances")):
            db.execute("INSERT INTO calls (run_id, target_key, step_id, rollback, service, "
                       "operation, params, status, sent_at) VALUES (?,?,?,?,?,?,?,?,?)",
                       ("run-1", key.key, step, rollback, "ec2", operation, "{}", "ok", at))


def test_a_journal_of_the_previous_version_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.journal"
    version_1_journal(path)

    journal = Journal(path)
    targets = journal.targets("run-1")

    def where(target: Target) -> tuple[str, int, list[str]]:
        record = targets[target.key]
        return record.phase, record.pass_number, [s.step_id for s in record.steps]

    assert where(I1) == ("restart", 2, [])  # starts again: pass 1 is history
    # Rows that may be stale are history: the rollback runs again from its first step,
    # then the target starts again (the operator caused it).
    assert where(I2) == ("stop-rollback", 2, [])
    assert where(I3) == ("stop-rollback", 2, [])
    assert where(I4) == ("rollback", 2, [])  # after a failure: it ends rolled back
    assert where(I5) == ("steps", 1, ["stop"])  # its rows are its own: it goes on
    assert journal.run("run-1").playbook_text is None
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (4,)
    # Opening it again changes nothing more.
    assert Journal(path).targets("run-1") == targets


def test_a_journal_of_a_newer_version_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "new.journal"
    Journal(path).close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA user_version = 9")

    with pytest.raises(JournalError) as refused:
        Journal(path)

    assert str(refused.value) == (
        f"{path} was written by a newer remediate (journal version 9; this one reads up to "
        "4): resume it with that version")


def test_a_version_2_journal_gets_the_rollback_reason_column(tmp_path: Path) -> None:
    path = tmp_path / "v2.journal"
    journal = Journal(path)
    journal.begin_run(run_record())
    journal.set_target("run-1", I1, AT, phase="rollback", error="step stop failed: no")
    journal.close()
    with contextlib.closing(sqlite3.connect(path)) as db:  # as version 2 wrote it
        db.execute("ALTER TABLE targets DROP COLUMN rollback_reason")
        db.execute("PRAGMA user_version = 2")
        db.commit()

    migrated = Journal(path)
    record = migrated.targets("run-1")[I1.key]
    migrated.set_target("run-1", I2, AT, phase="rollback", error="cut short",
                        rollback_reason="step start failed: no")

    # A rollback journaled before the column gives its latest error as its reason.
    assert (record.phase, record.error, record.rollback_reason) == (
        "rollback", "step stop failed: no", None)
    assert migrated.targets("run-1")[I2.key].rollback_reason == "step start failed: no"
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (4,)
