"""Long journal values kept once: a script sent to many targets, a merged call's answer."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from remediate.actions.contract import Target
from remediate.journal import Journal, RunRecord

AT = datetime(2024, 7, 19, 6, 0, tzinfo=UTC)
TARGETS = [Target("ec2-instance", f"i-{n:017x}", "us-east-1") for n in range(200)]
BODY = [f"# line {n} of the repair script, long enough to matter: {'x' * 60}"
        for n in range(120)]


def _run(journal: Journal) -> None:
    journal.begin_run(RunRecord("run-1", "/pb/repair.yaml", "ab" * 32, {}, {},
                                tuple(TARGETS), False, "running", 1, "host-a",
                                AT.isoformat(), playbook_text="version: 1\n"))


def _send_command(target: Target) -> dict[str, Any]:
    return {"DocumentName": "AWS-RunPowerShellScript", "InstanceIds": ["i-rescue"],
            "Parameters": {"commands": [f"$VolumeId = 'vol-{target.id[2:]}'", *BODY]}}


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchall()


def test_a_script_sent_for_every_target_is_stored_once_and_reads_back_whole(
        tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    journal = Journal(path)
    _run(journal)
    for target in TARGETS:
        call_id = journal.call_intent("run-1", target.key, "repair", False, "ssm",
                                      "SendCommand", _send_command(target), AT)
        journal.call_result(call_id, AT, request_id="r", response={
            "Command": {"CommandId": f"c-{target.id}", **_send_command(target)}})
    journal.close()

    assert len(str(BODY)) > 10_000
    assert _rows(path, "SELECT COUNT(*) FROM blobs WHERE LENGTH(text) > 10000") == [(1,)]
    # Each row refers to it: none holds a copy.
    [(params, answers)] = _rows(path, "SELECT MAX(LENGTH(params)), MAX(LENGTH(response)) "
                                      "FROM calls")
    assert params < 400 and answers < 400
    reread = Journal(path)
    for target in TARGETS:
        (call,) = reread.calls("run-1", target.key)
        assert call.params == _send_command(target)
        assert call.response == {"Command": {"CommandId": f"c-{target.id}",
                                             **_send_command(target)}}


def test_a_merged_answer_is_stored_once_for_all_its_members(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    journal = Journal(path)
    _run(journal)
    answer = {"StoppingInstances": [
        {"InstanceId": t.id, "CurrentState": {"Code": 64, "Name": "stopping"},
         "PreviousState": {"Code": 16, "Name": "running"}} for t in TARGETS]}
    ids = [journal.call_intent("run-1", t.key, "stop", False, "ec2", "StopInstances",
                               {"InstanceIds": [t.id]}, AT) for t in TARGETS]
    journal.commit()
    journal.call_results(ids, AT, request_id="r", response=answer)  # one request's answer
    journal.close()

    [(blobs, stored)] = _rows(path, "SELECT COUNT(*), SUM(LENGTH(text)) FROM blobs")
    [(answers,)] = _rows(path, "SELECT SUM(LENGTH(response)) FROM calls")
    assert blobs == 1 and answers < stored  # 200 references, not 200 copies of 25 KB
    reread = Journal(path)
    assert reread.step_answers("run-1", TARGETS[7].key, "stop", "StopInstances") == [answer]


def test_rows_of_a_journal_written_before_blobs_read_as_they_were(tmp_path: Path) -> None:
    path = tmp_path / "v3.journal"
    journal = Journal(path)
    _run(journal)
    journal.close()
    whole = _send_command(TARGETS[0])
    with contextlib.closing(sqlite3.connect(path)) as db:  # as version 3 wrote it
        db.execute("DROP TABLE blobs")
        db.execute("PRAGMA user_version = 3")
        db.execute("INSERT INTO calls (run_id, target_key, step_id, rollback, service, "
                   "operation, params, status, response, sent_at) VALUES "
                   "(?,?,?,?,?,?,?,?,?,?)", ("run-1", TARGETS[0].key, "repair", 0, "ssm",
                                             "SendCommand", _json(whole), "ok",
                                             _json({"Command": whole}), AT.isoformat()))
        db.commit()

    migrated = Journal(path)

    (call,) = migrated.calls("run-1", TARGETS[0].key)
    assert (call.params, call.response) == (whole, {"Command": whole})
    assert migrated.step_answers("run-1", TARGETS[0].key, "repair", "SendCommand") == [
        {"Command": whole}]
    assert _rows(path, "PRAGMA user_version") == [(4,)]


def _json(value: Any) -> str:
    import json
    return json.dumps(value, sort_keys=True)


def test_what_the_members_of_a_merged_call_share_is_stored_once(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    journal = Journal(path)
    _run(journal)
    tags = [{"Key": "remediate:claim", "Value": '{"run": "run-1", "host": "host-a", '
                                                '"pid": 4242, "until": "2024-07-19T06:15"}'}]
    for target in TARGETS:
        journal.call_intent("run-1", target.key, "claim", False, "ec2", "CreateTags",
                            {"Resources": [target.id], "Tags": tags}, AT, merged=True)
    journal.close()

    [(blobs,)] = _rows(path, "SELECT COUNT(*) FROM blobs")
    [(longest,)] = _rows(path, "SELECT MAX(LENGTH(params)) FROM calls")
    assert blobs == 1 and longest < len(str(tags))
    reread = Journal(path)
    assert [c.params for c in reread.calls("run-1", TARGETS[3].key)] == [
        {"Resources": [TARGETS[3].id], "Tags": tags}]
