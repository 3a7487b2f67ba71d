"""The run journal: records, results, locks, crash-consistent reload.

That a mutating call's intent is committed before the request leaves is tested with
the call layer (tests/executor/test_calls.py).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from remediate.actions.contract import Target
from remediate.journal import Journal, RunRecord
from remediate.journal.locks import process_start
from remediate.journal.records import LockHolder
from remediate.journal.store import MAX_RESPONSE_CHARS

AT = datetime(2024, 7, 19, 6, 0, tzinfo=UTC)
TARGETS = (Target("ec2-instance", "i-1", "us-east-1"), Target("ec2-instance", "i-2", "us-east-1"),
           Target("workspace", "ws-1", "eu-west-1", "prod"))


def record(run_id: str = "run-1", pid: int = 1, targets: tuple[Target, ...] = TARGETS
           ) -> RunRecord:
    return RunRecord(run_id, "/pb/swap.yaml", "ab" * 32, {"rescue_ami": "ami-1"},
                     {"concurrency": 5}, targets, False, "running", pid, "host-a",
                     AT.isoformat())


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "run.journal")


def test_a_run_reads_back_as_written(journal: Journal) -> None:
    journal.begin_run(record("run-1"))
    journal.begin_run(record("run-2", targets=TARGETS[:1]))

    assert journal.run("run-1") == record("run-1")
    assert journal.run().run_id == "run-2"
    with pytest.raises(KeyError, match="no run nope in "):
        journal.run("nope")


def test_without_a_run_id_the_latest_unfinished_run_is_the_one_to_resume(
        journal: Journal) -> None:
    """Runs share the default journal: a run that finished after an interrupted one must
    not hide it from `remediate resume JOURNAL`."""
    journal.begin_run(record("interrupted"))
    journal.set_run_status("interrupted", "interrupted", AT)
    journal.begin_run(record("finished"))
    journal.set_run_status("finished", "finished", AT)
    assert journal.run().run_id == "interrupted"

    journal.begin_run(record("crashed"))  # still "running": its process died
    assert journal.run().run_id == "crashed"
    assert journal.unfinished_runs() == ["interrupted", "crashed"]

    journal.set_run_status("interrupted", "finished", AT)
    journal.set_run_status("crashed", "finished", AT)
    assert journal.run().run_id == "crashed"  # all finished: the latest


def test_the_journal_uses_wal_with_full_sync(journal: Journal) -> None:
    db = journal._db
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL


def test_targets_steps_and_outputs_read_back(journal: Journal) -> None:
    journal.begin_run(record())
    i1, i2, ws = TARGETS
    journal.set_target("run-1", i1, AT, phase="inspected", facts={"state": "running"})
    journal.set_target("run-1", i1, AT, phase="steps")
    journal.step_started("run-1", i1, "stop", False, 1, AT)
    journal.step_finished("run-1", i1, "stop", False, status="succeeded", attempts=2, at=AT,
                          outputs={"previous_state": "running"})
    journal.step_started("run-1", i1, "detach", False, 1, AT)
    journal.set_target("run-1", i2, AT, phase="done", status="refused", error="spot-one-time")
    journal.commit()

    targets = journal.targets("run-1")

    assert list(targets) == [t.key for t in TARGETS]
    first = targets[i1.key]
    assert (first.phase, first.status, first.facts, first.finished) == (
        "steps", None, {"state": "running"}, False)
    assert [(s.step_id, s.status, s.attempts, s.outputs) for s in first.steps] == [
        ("stop", "succeeded", 2, {"previous_state": "running"}), ("detach", "running", 1, {})]
    assert first.step("detach") is not None and first.step("detach", rollback=True) is None
    assert targets[i2.key].finished and targets[i2.key].error == "spot-one-time"
    assert targets[ws.key].target == ws and targets[ws.key].phase == "pending"


def test_step_sent_says_whether_a_steps_call_was_journaled_for_that_target(
        journal: Journal) -> None:
    journal.begin_run(record())
    i1, i2, _ = TARGETS
    journal.call_intent("run-1", i1.key, "repair", False, "ssm", "SendCommand", {}, AT)

    assert journal.step_sent("run-1", i1.key, "repair", "SendCommand")
    assert not journal.step_sent("run-1", i2.key, "repair", "SendCommand")
    assert not journal.step_sent("run-1", i1.key, "verify", "SendCommand")
    assert not journal.step_sent("run-1", i1.key, "repair", "StopInstances")
    assert not journal.step_sent("run-2", i1.key, "repair", "SendCommand")


def test_step_unanswered_says_whether_a_steps_call_never_got_its_reply(
        journal: Journal) -> None:
    journal.begin_run(record())
    i1, i2, ws = TARGETS
    lost = journal.call_intent("run-1", i1.key, "backup", False, "ec2", "CreateSnapshot",
                               {}, AT)
    journal.call_result(lost, AT, request_id="r-1", error="InternalError: oops", uncertain=True)
    answered = journal.call_intent("run-1", i2.key, "backup", False, "ec2", "CreateSnapshot",
                                   {}, AT)
    journal.call_result(answered, AT, request_id="r-2", response={"SnapshotId": "snap-1"})
    refused = journal.call_intent("run-1", ws.key, "backup", False, "ec2", "CreateSnapshot",
                                  {}, AT)
    journal.call_result(refused, AT, request_id="r-3", error="IncorrectState: no")
    # Sent, and the tool died before the answer: unanswered as well.
    journal.call_intent("run-1", i2.key, "repair", False, "ssm", "SendCommand", {}, AT)

    assert journal.step_unanswered("run-1", i1.key, "backup", "CreateSnapshot")
    assert not journal.step_unanswered("run-1", i2.key, "backup", "CreateSnapshot")
    assert not journal.step_unanswered("run-1", ws.key, "backup", "CreateSnapshot")
    assert journal.step_unanswered("run-1", i2.key, "repair", "SendCommand")
    assert not journal.step_unanswered("run-1", i1.key, "repair", "SendCommand")


def test_step_answers_are_what_aws_answered_that_steps_calls(journal: Journal) -> None:
    journal.begin_run(record())
    i1, i2, _ = TARGETS
    for target, answer in ((i1, {"Command": {"CommandId": "c-1"}}),
                           (i1, {"Command": {"CommandId": "c-2"}}),
                           (i2, {"Command": {"CommandId": "c-3"}})):
        call = journal.call_intent("run-1", target.key, "repair", False, "ssm", "SendCommand",
                                   {}, AT)
        journal.call_result(call, AT, request_id="r", response=answer)
    lost = journal.call_intent("run-1", i1.key, "repair", False, "ssm", "SendCommand", {}, AT)
    journal.call_result(lost, AT, request_id="r", error="InternalError: oops", uncertain=True)

    assert journal.step_answers("run-1", i1.key, "repair", "SendCommand") == [
        {"Command": {"CommandId": "c-1"}}, {"Command": {"CommandId": "c-2"}}]
    assert journal.step_answers("run-1", i1.key, "verify", "SendCommand") == []


def test_step_in_flight_says_whether_a_step_started_and_never_finished(
        journal: Journal) -> None:
    journal.begin_run(record())
    i1, i2, _ = TARGETS
    journal.step_started("run-1", i1, "repair", False, 1, AT)
    journal.step_started("run-1", i2, "repair", False, 1, AT)
    journal.step_finished("run-1", i2, "repair", False, status="failed", attempts=1, at=AT)

    assert journal.step_in_flight("run-1", i1.key, "repair", False)
    assert not journal.step_in_flight("run-1", i1.key, "repair", True)
    assert not journal.step_in_flight("run-1", i2.key, "repair", False)
    assert not journal.step_in_flight("run-1", i1.key, "verify", False)


def test_a_target_counts_as_mutated_unless_aws_rejected_the_call(journal: Journal) -> None:
    journal.begin_run(record())
    i1, i2, ws = TARGETS
    sent = journal.call_intent("run-1", i1.key, "stop", False, "ec2", "StopInstances",
                               {"InstanceIds": ["i-1"]}, AT)
    rejected = journal.call_intent("run-1", i2.key, "stop", False, "ec2", "StopInstances",
                                   {"InstanceIds": ["i-2"]}, AT)
    journal.call_result(rejected, AT, request_id="r-2", error="IncorrectInstanceState: no")
    rollback = journal.call_intent("run-1", ws.key, "undo", True, "workspaces",
                                   "RebootWorkspaces", {}, AT)
    journal.call_result(rollback, AT, request_id="r-3", response={})
    journal.commit()

    targets = journal.targets("run-1")

    assert [targets[t.key].mutated for t in TARGETS] == [True, False, False]
    assert [(c.call_id, c.status) for c in journal.calls("run-1")] == [
        (sent, "sent"), (rejected, "error"), (rollback, "ok")]


def test_results_keep_the_request_id_and_the_response_without_metadata(journal: Journal) -> None:
    journal.begin_run(record())
    ok = journal.call_intent("run-1", "k", "s", False, "ec2", "StopInstances", {"a": 1}, AT)
    big = journal.call_intent("run-1", "k", "s", False, "ec2", "CreateTags", {}, AT)
    timeout = journal.call_intent("run-1", "k", "s", False, "ec2", "AttachVolume", {}, AT)
    journal.call_result(ok, AT, request_id="req-9", response={
        "StoppingInstances": [{"InstanceId": "i-1"}], "ResponseMetadata": {"RequestId": "req-9"}})
    journal.call_result(big, AT, request_id="req-10", response={"x": "y" * MAX_RESPONSE_CHARS})
    journal.call_result(timeout, AT, request_id=None, error="ConnectionError: read timeout",
                        uncertain=True)

    calls = journal.calls("run-1", "k")

    assert calls[0].response == {"StoppingInstances": [{"InstanceId": "i-1"}]}
    assert (calls[0].request_id, calls[0].params) == ("req-9", {"a": 1})
    assert set(calls[1].response or {}) == {"truncated"}
    assert (calls[2].status, calls[2].error) == ("unknown", "ConnectionError: read timeout")


CRASHING_WRITER = textwrap.dedent("""
    import os, sys
    from datetime import UTC, datetime
    from remediate.actions.contract import Target
    from remediate.journal import Journal, RunRecord
    at = datetime(2024, 7, 19, tzinfo=UTC)
    target = Target("ec2-instance", "i-1", "us-east-1")
    journal = Journal(sys.argv[1])
    journal.begin_run(RunRecord("run-1", "pb", "", {}, {}, (target,), False, "running",
                                os.getpid(), "h", at.isoformat()))
    journal.step_finished("run-1", target, "stop", False, status="succeeded", attempts=1,
                          at=at, outputs={"previous_state": "running"})
    journal.call_intent("run-1", target.key, "detach", False, "ec2", "DetachVolume", {}, at)
    journal.commit()
    # A tick that never commits: the process dies in the middle of it.
    journal.step_finished("run-1", target, "detach", False, status="succeeded", attempts=1,
                          at=at)
    os._exit(9)
""")


def test_a_crashed_writer_leaves_what_it_committed_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    done = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(path)], check=False)
    assert done.returncode == 9

    journal = Journal(path)
    target = journal.targets("run-1")["default/us-east-1/i-1"]

    assert [(s.step_id, s.status) for s in target.steps] == [("stop", "succeeded")]
    assert target.mutated  # the DetachVolume intent: sent, outcome unknown
    assert [(c.operation, c.status) for c in journal.calls("run-1")] == [
        ("DetachVolume", "sent")]


def test_run_state_and_services_are_kept_per_run(journal: Journal) -> None:
    journal.begin_run(record())
    journal.set_state("run-1", "canary_confirmed", True)
    journal.service_used("run-1", "default", "us-east-1", "pkg.mod:Pool")
    journal.service_used("run-1", "default", "us-east-1", "pkg.mod:Pool")
    journal.commit()

    assert journal.state("run-1", "canary_confirmed") is True
    assert journal.state("run-2", "canary_confirmed", "absent") == "absent"
    assert journal.services("run-1") == [("default", "us-east-1", "pkg.mod:Pool")]


# ---- locks -----------------------------------------------------------------------------


def _lock_as(path: Path, run_id: str, pid: int, host: str, keys: list[str]) -> None:
    with sqlite3.connect(path) as db:
        db.executemany("INSERT OR REPLACE INTO locks (target_key, run_id, pid, host, started_at) "
                       "VALUES (?,?,?,?,?)",
                       [(key, run_id, pid, host, "2024-07-19T05:40:00+00:00") for key in keys])


def test_a_live_run_keeps_its_locks(journal: Journal, tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                              stdin=subprocess.PIPE)
    try:
        _lock_as(tmp_path / "run.journal", "run-A", holder.pid, journal.host, ["k1"])

        outcome = journal.lock_targets("run-B", ["k1", "k2"], AT.isoformat())

        assert outcome.acquired == ("k2",)
        assert outcome.refused == {"k1": LockHolder("k1", "run-A", holder.pid, journal.host,
                                                    "2024-07-19T05:40:00+00:00")}
        assert outcome.refused["k1"].describe() == (
            f"locked by run run-A (pid {holder.pid} on {journal.host}, started "
            "2024-07-19T05:40:00+00:00)")
    finally:
        holder.communicate(b"")


def test_a_dead_processs_locks_are_taken_over(journal: Journal, tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(gone.stdout)
    _lock_as(tmp_path / "run.journal", "run-A", dead_pid, journal.host, ["k1"])

    outcome = journal.lock_targets("run-B", ["k1"], AT.isoformat())

    assert outcome.acquired == ("k1",)
    assert outcome.taken_over["k1"].pid == dead_pid
    assert not outcome.refused


def test_locks_of_another_host_are_always_honoured(journal: Journal, tmp_path: Path) -> None:
    _lock_as(tmp_path / "run.journal", "run-A", 1, "elsewhere", ["k1"])

    outcome = journal.lock_targets("run-B", ["k1"], AT.isoformat())

    assert outcome.acquired == () and outcome.refused["k1"].host == "elsewhere"


def test_a_resumed_run_takes_its_own_locks_back_and_releases_them(journal: Journal,
                                                                 tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    _lock_as(tmp_path / "run.journal", "run-A", int(gone.stdout), journal.host, ["k1"])

    outcome = journal.lock_targets("run-A", ["k1"], AT.isoformat())
    assert outcome.acquired == ("k1",) and not outcome.taken_over
    # Another run in this same process is still running: its lock holds.
    assert journal.lock_targets("run-B", ["k1"], AT.isoformat()).refused

    journal.release_locks("run-A")

    assert journal.lock_targets("run-B", ["k1"], AT.isoformat()).acquired == ("k1",)


def test_commit_stale_commits_only_an_old_enough_transaction(journal: Journal,
                                                            tmp_path: Path) -> None:
    journal.begin_run(record())
    journal.set_state("run-1", "k", 1)

    def seen() -> list[tuple[str]]:
        with sqlite3.connect(tmp_path / "run.journal") as other:
            return other.execute("SELECT key FROM run_state").fetchall()

    journal.commit_stale(age=3600.0)
    assert seen() == []
    journal.commit_stale(age=0.0)
    assert seen() == [("k",)]


# ---- claiming a run (resume) -----------------------------------------------------------


def _dump(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return [*db.execute("SELECT * FROM runs"), *db.execute("SELECT * FROM locks")]


def test_a_run_whose_process_lives_is_not_claimed_and_nothing_is_written(
        journal: Journal, tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                              stdin=subprocess.PIPE)
    try:
        journal.begin_run(replace(record(), pid=holder.pid, host=journal.host))
        _lock_as(tmp_path / "run.journal", "run-1", holder.pid, journal.host, ["k1"])
        before = _dump(tmp_path / "run.journal")

        claimed = journal.claim_run("run-1")

        assert claimed == LockHolder("", "run-1", holder.pid, journal.host, AT.isoformat())
        assert _dump(tmp_path / "run.journal") == before
    finally:
        holder.communicate(b"")
    # Its process gone (its row still says running, its lock is left): the run is ours.
    assert journal.claim_run("run-1") is None
    assert (journal.run("run-1").status, journal.run("run-1").pid) == ("running", journal.pid)


def test_a_pid_another_process_got_since_the_run_was_killed_does_not_hold_it(
        journal: Journal, tmp_path: Path) -> None:
    """The run's process was killed (or the host rebooted) and its pid went to another
    process: `resume` must not be refused as if the run were still going."""
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        journal.begin_run(replace(record(), pid=other.pid, host=journal.host))
        _lock_as(tmp_path / "run.journal", "run-1", other.pid, journal.host, ["k1"])
        started = process_start(other.pid)
        assert started is not None
        with sqlite3.connect(tmp_path / "run.journal") as db:  # the dead run's process
            db.execute("UPDATE runs SET process_start = ?", (started - 1,))
            db.execute("UPDATE locks SET process_start = ?", (started - 1,))

        assert journal.claim_run("run-1") is None
        assert journal.lock_targets("run-2", ["k1"], AT.isoformat()).acquired == ("k1",)
    finally:
        other.communicate(b"")


def test_a_live_lock_of_the_run_holds_it_even_after_its_row_says_crashed(
        journal: Journal, tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                              stdin=subprocess.PIPE)
    try:
        journal.begin_run(record())
        journal.set_run_status("run-1", "crashed", AT)
        _lock_as(tmp_path / "run.journal", "run-1", holder.pid, journal.host, ["k1"])

        claimed = journal.claim_run("run-1")

        assert claimed is not None and (claimed.target_key, claimed.pid) == ("k1", holder.pid)
        assert journal.run("run-1").status == "crashed"
    finally:
        holder.communicate(b"")


def test_a_run_held_on_another_host_is_never_claimed(journal: Journal, tmp_path: Path) -> None:
    journal.begin_run(record(pid=4242))  # host-a, running
    before = _dump(tmp_path / "run.journal")

    assert journal.claim_run("run-1") == LockHolder("", "run-1", 4242, "host-a",
                                                    AT.isoformat())
    assert _dump(tmp_path / "run.journal") == before


def test_a_killed_process_not_reaped_yet_holds_nothing(journal: Journal) -> None:
    zombie = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                              stdin=subprocess.PIPE)
    zombie.kill()
    wait_for_zombie(zombie.pid)  # killed; its parent (this test) has not reaped it
    try:
        journal.begin_run(replace(record(), pid=zombie.pid, host=journal.host))

        assert journal.claim_run("run-1") is None
    finally:
        zombie.wait()


def wait_for_zombie(pid: int) -> None:
    """Until the kernel shows ``pid`` as a zombie (SIGKILL is delivered asynchronously)."""
    stat = Path(f"/proc/{pid}/stat")
    for _ in range(10_000):
        if stat.read_text().rpartition(")")[2].split()[0] == "Z":
            return
        os.sched_yield()
    raise AssertionError(f"{pid} never became a zombie")
