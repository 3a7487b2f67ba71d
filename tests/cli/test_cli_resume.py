"""`remediate resume`, and Ctrl-C in the middle of `remediate run` (in this process).

Ctrl-C is a real SIGINT sent to this process when a chosen step finishes, so the
command's own handler sees it exactly as from a terminal. (tests/e2e does the
same to a subprocess, and kills one with SIGKILL.)
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_support import (
    OFFLINE_REPAIR,
    CliSandbox,
    backups,
    cli_sandbox,
    ctrl_c_after,
    misplaced_roots,
    notified_subjects,
    repair_problems,
    rescue_instances,
    root_states,
    run_cli,
    sns_inbox,
)
from remediate.cli import launch
from remediate.journal import Journal
from remediate.sandbox import FleetSpec


@pytest.fixture
def three(monkeypatch: pytest.MonkeyPatch) -> Iterator[CliSandbox]:
    with cli_sandbox(monkeypatch, FleetSpec(plain=3, azs=2)) as cli:
        yield cli


def run_offline_repair(cli: CliSandbox, journal: Path) -> int:
    return run_cli("run", OFFLINE_REPAIR, "--yes", "--no-progress", *cli.rescue_param,
                   "--journal", str(journal))


def test_ctrl_c_mid_step_leaves_every_target_consistent(
        three: CliSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    canary, *rest = sorted(three.fleet.instance_ids())
    before = root_states(three.ec2, [canary, *rest])
    ctrl_c_after(monkeypatch, "detach")  # the canary's root volume is off its instance

    code = run_offline_repair(three, tmp_path / "j.sqlite")

    err = capsys.readouterr().err
    assert code == 130, err
    assert ("interrupted: 1 target in flight: default/us-east-1/"
            f"{canary}: step attach (rescue.attach_volume)\n") in err
    # The canary was rolled back: its own volume, at its own device, running again.
    assert root_states(three.ec2, [canary, *rest]) == before
    assert misplaced_roots(three.ec2, before) == [] and rescue_instances(three.ec2) == []
    for instance_id in rest:  # never started
        assert backups(three.ec2, instance_id) == []
    journal = Journal(tmp_path / "j.sqlite")
    assert journal.run().status == "interrupted"


def test_ctrl_c_between_batches_then_resume_fixes_every_target(
        three: CliSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    before = root_states(three.ec2, three.fleet.instance_ids())
    ctrl_c_after(monkeypatch, "verify")  # the canary is done; the next batch never starts
    assert run_offline_repair(three, tmp_path / "j.sqlite") == 130
    capsys.readouterr()

    code = run_cli("resume", str(tmp_path / "j.sqlite"), "--no-progress")

    err = capsys.readouterr().err
    assert code == 0, err
    run_id = Journal(tmp_path / "j.sqlite").run().run_id
    assert err.startswith(f"resuming run {run_id} (interrupted) of {OFFLINE_REPAIR}\n")
    assert err.splitlines()[-1] == f"run {run_id} finished: 3 succeeded"
    for state in before.values():
        assert repair_problems(three.ec2, state, three.sandbox.channel_file_present) == []
    assert rescue_instances(three.ec2) == []


def test_resume_continues_the_interrupted_run_not_a_later_finished_one(
        three: CliSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Runs without --journal share one: a run that finished after the interrupted one
    must not be what `resume JOURNAL` picks up."""
    journal = tmp_path / "j.sqlite"
    canary = sorted(three.fleet.instance_ids())[0]
    before = root_states(three.ec2, three.fleet.instance_ids())
    subscribers = launch.subscribers
    ctrl_c_after(monkeypatch, "verify")  # the canary is done; the next batch never starts
    assert run_offline_repair(three, journal) == 130
    interrupted = Journal(journal).run().run_id
    monkeypatch.setattr(launch, "subscribers", subscribers)  # no more Ctrl-C
    assert run_cli("run", OFFLINE_REPAIR, "--yes", "--no-progress", *three.rescue_param,
                   "--journal", str(journal), "--target-ids", canary) == 0  # finished
    capsys.readouterr()

    code = run_cli("resume", str(journal), "--no-progress")

    err = capsys.readouterr().err
    assert code == 0, err
    assert err.startswith(f"resuming run {interrupted} (interrupted) of {OFFLINE_REPAIR}\n")
    assert err.splitlines()[-1] == f"run {interrupted} finished: 3 succeeded"
    for state in before.values():
        assert repair_problems(three.ec2, state, three.sandbox.channel_file_present) == []


def test_ctrl_c_mid_step_then_resume_fixes_every_target(
        three: CliSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    canary = sorted(three.fleet.instance_ids())[0]
    before = root_states(three.ec2, three.fleet.instance_ids())
    ctrl_c_after(monkeypatch, "backup")  # the canary made its backup: a mutation
    assert run_offline_repair(three, tmp_path / "j.sqlite") == 130
    journal = Journal(tmp_path / "j.sqlite")
    record = journal.targets(journal.run().run_id)[f"default/us-east-1/{canary}"]
    # Rolled back by the operator's choice: not a failure, started again by resume.
    assert (record.phase, record.status) == ("restart", "interrupted")
    assert record.error == ("interrupted by the operator before step detach; rolled back to "
                            "where it was; `remediate resume` starts it again")
    assert "failure budget" not in capsys.readouterr().err

    code = run_cli("resume", str(tmp_path / "j.sqlite"), "--no-progress")

    err = capsys.readouterr().err
    assert code == 0, err
    assert err.splitlines()[-1] == f"run {journal.run().run_id} finished: 3 succeeded"
    assert len(backups(three.ec2, canary)) == 1  # its first backup found again, not redone
    for state in before.values():
        assert repair_problems(three.ec2, state, three.sandbox.channel_file_present) == []


def test_resuming_a_finished_run_changes_nothing(
        three: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = tmp_path / "j.sqlite"
    assert run_cli("run", OFFLINE_REPAIR, "--yes", "--no-progress", *three.rescue_param,
                   "--journal", str(journal), "--target-ids",
                   three.fleet.instance_ids()[0]) == 0
    three.sandbox.reset_api_calls()

    assert run_cli("resume", str(journal), "--no-progress") == 0

    assert three.mutating_calls() == []


def test_resume_errors_are_one_line(three: CliSandbox, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.sqlite"
    Journal(empty).close()
    assert run_cli("resume", str(empty)) == 1
    assert capsys.readouterr().err == f"error: {empty} holds no run\n"

    journal = tmp_path / "j.sqlite"
    assert run_cli("run", OFFLINE_REPAIR, "--yes", "--no-progress", *three.rescue_param,
                   "--journal", str(journal), "--target-ids",
                   three.fleet.instance_ids()[0]) == 0
    capsys.readouterr()

    assert run_cli("resume", str(journal), "--run-id", "r-nope") == 1
    assert capsys.readouterr().err == f"error: {journal} has no run 'r-nope'\n"

    assert run_cli("resume", str(journal), "--edited-playbook", "--playbook",
                   str(tmp_path / "nowhere.yaml")) == 1
    assert capsys.readouterr().err == (
        f"error: --edited-playbook: there is no playbook at {tmp_path / 'nowhere.yaml'}\n")


def copied_playbook(tmp_path: Path) -> Path:
    """The offline repair in a folder of its own (its scripts beside it), to edit."""
    playbook = tmp_path / "pb" / "repair.yaml"
    playbook.parent.mkdir()
    playbook.write_text(Path(OFFLINE_REPAIR).read_text(encoding="utf-8"), encoding="utf-8")
    # A copy: a script reached through a link out of the playbook's folder is refused.
    shutil.copytree(Path(OFFLINE_REPAIR).parent / "scripts", playbook.parent / "scripts")
    return playbook


def edit(playbook: Path) -> str:
    """A comment added, and the last step renamed (what a run of the edit would show)."""
    text = playbook.read_text(encoding="utf-8")
    assert "  - id: verify\n" in text
    edited = "# edited after the run started\n" + text.replace("  - id: verify\n",
                                                               "  - id: verify_boot\n")
    playbook.write_text(edited, encoding="utf-8")
    return edited


def step_ids(report: Path) -> set[str]:
    data = json.loads(report.read_text(encoding="utf-8"))
    return {step["id"] for target in data["targets"] for step in target["steps"]}


def test_resume_runs_the_journaled_playbook_not_the_edited_file(
        three: CliSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    playbook, journal, report = copied_playbook(tmp_path), tmp_path / "j.sqlite", \
        tmp_path / "run.json"
    before = root_states(three.ec2, three.fleet.instance_ids())
    ctrl_c_after(monkeypatch, "verify")  # the canary is done; the next batch never starts
    assert run_cli("run", str(playbook), "--yes", "--no-progress", *three.rescue_param,
                   "--journal", str(journal)) == 130
    journaled = Journal(journal).run()
    edit(playbook)
    capsys.readouterr()

    code = run_cli("resume", str(journal), "--no-progress", "--report", f"json:{report}")

    err = capsys.readouterr().err
    assert code == 0, err
    assert err.startswith(
        f"note: {playbook} changed since run {journaled.run_id} started; resuming with the "
        "playbook journaled then (--edited-playbook runs the file as it is now, after showing "
        "the diff)\n")
    assert "verify" in step_ids(report) and "verify_boot" not in step_ids(report)
    assert Journal(journal).run().playbook_text == journaled.playbook_text
    for state in before.values():
        assert repair_problems(three.ec2, state, three.sandbox.channel_file_present) == []


def test_edited_playbook_shows_the_diff_then_runs_the_edited_file(
        three: CliSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    playbook, journal, report = copied_playbook(tmp_path), tmp_path / "j.sqlite", \
        tmp_path / "run.json"
    ctrl_c_after(monkeypatch, "verify")
    assert run_cli("run", str(playbook), "--yes", "--no-progress", *three.rescue_param,
                   "--journal", str(journal)) == 130
    run_id = Journal(journal).run().run_id
    edited = edit(playbook)
    capsys.readouterr()

    code = run_cli("resume", str(journal), "--no-progress", "--edited-playbook", "--report",
                   f"json:{report}")

    err = capsys.readouterr().err
    assert code == 0, err
    diff = err[:err.index(f"resuming run {run_id} with the edited")]
    assert diff.startswith(f"--- {playbook} (journaled when run {run_id} started)\n"
                           f"+++ {playbook} (now)\n@@ ")
    assert "\n+# edited after the run started\n" in diff
    assert "\n-  - id: verify\n+  - id: verify_boot\n" in diff
    assert f"resuming run {run_id} with the edited {playbook} (--edited-playbook); it is the " \
           "run's playbook from now on\n" in err
    assert "verify_boot" in step_ids(report)
    assert Journal(journal).run().playbook_text == edited


def test_a_run_another_host_holds_is_not_resumed_here(
        three: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = tmp_path / "j.sqlite"
    assert run_offline_repair(three, journal) == 0
    with contextlib.closing(sqlite3.connect(journal)) as db, db:
        # As the journal reads while ops-laptop-2 runs it (a journal on a shared disk).
        db.execute("UPDATE runs SET status='running', pid=4242, host='ops-laptop-2'")
        before = db.execute("SELECT * FROM runs").fetchall()
    record = Journal(journal).run()
    capsys.readouterr()
    three.sandbox.reset_api_calls()

    assert run_cli("resume", str(journal), "--no-progress") == 1

    assert capsys.readouterr().err == (
        f"error: {journal}: run {record.run_id} is held by pid 4242 on ops-laptop-2 (since "
        f"{record.started_at}), which cannot be checked from {socket.gethostname()}: resume "
        "it on ops-laptop-2\n")
    with contextlib.closing(sqlite3.connect(journal)) as db:
        assert db.execute("SELECT * FROM runs").fetchall() == before
    assert three.sandbox.api_calls == []


def test_resume_keeps_notifying_and_checks_the_topic_first(
        three: CliSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    journal = tmp_path / "j.sqlite"
    inbox = sns_inbox(three.sandbox)
    ctrl_c_after(monkeypatch, "verify")  # the canary is done; the next batch never starts
    assert run_offline_repair(three, journal) == 130
    run_id = Journal(journal).run().run_id
    capsys.readouterr()

    nosuch = "arn:aws:sns:us-east-1:123456789012:nosuch"
    assert run_cli("resume", str(journal), "--no-progress", "--notify", f"sns:{nosuch}") == 1
    assert capsys.readouterr().err == (
        f"error: --notify: SNS topic {nosuch} does not exist (NotFound: Topic does not "
        "exist)\n")
    assert Journal(journal).run().status == "interrupted"

    code = run_cli("resume", str(journal), "--no-progress", "--notify",
                   f"sns:{inbox.topic_arn}")

    assert code == 0, capsys.readouterr().err
    notes = inbox.messages()
    assert [subject for subject, _ in notes] == notified_subjects(OFFLINE_REPAIR, 2)
    assert notes[-1][1] == {"run_id": run_id, "summary": {"succeeded": 3}}
