"""Resume: after a crash of the executor mid-run, and what it refuses to resume."""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from executor_support import (
    REGION,
    events_of,
    fixed,
    playbook,
    rescue_instances,
    step,
    swap_playbook,
)

from remediate.actions.contract import Target
from remediate.clock import VirtualClock
from remediate.executor.engine import Executor
from remediate.executor.events import Event, EventBus, StepStarted
from remediate.executor.resume import ResumeRefused, resume
from remediate.journal import Journal
from remediate.sandbox import FleetSpec, Sandbox


class Crash(BaseException):
    """The process dies (as if killed) in the middle of the scheduler's work."""


def test_a_run_that_crashed_mid_way_is_finished_by_resume(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        tmp_path: Path) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=10, azs=2))
    journal = Journal(tmp_path / "run.journal")
    pb = swap_playbook(fleet.regions[REGION].rescue_windows_ami, concurrency=5)
    targets = [Target("ec2-instance", t.instance_id, t.region) for t in fleet.targets]
    attaches = 0

    def crashing(account: str, region: str, service: str) -> Any:
        nonlocal attaches
        client = clients(account, region, service)

        class Dying:
            def __getattr__(self, name: str) -> Any:
                nonlocal attaches
                if name == "attach_volume":
                    attaches += 1
                    if attaches == 4:
                        raise Crash("killed while sending the 4th AttachVolume")
                return getattr(client, name)

        return Dying()

    with pytest.raises(Crash):
        Executor(pb, targets, clients=crashing, clock=clock, bus=bus, journal=journal,
                 run_id="run-x", workers=4).run()

    assert journal.run("run-x").status == "crashed"
    before = journal.targets("run-x")
    snapshotted = {k for k, r in before.items()
                   if (s := r.step("snapshot")) is not None and s.status == "succeeded"}
    in_flight = [c for c in journal.calls("run-x") if c.status == "sent"]
    # Intents of calls that never left (or whose answers were never read) are on disk,
    # their outcome unknown.
    assert in_flight and {c.operation for c in in_flight} == {"AttachVolume"}
    assert snapshotted and len(snapshotted) < 10

    events: list[Event] = []
    bus2 = EventBus()
    bus2.subscribe(events.append)
    sandbox.reset_api_calls()

    # As a new process would: from the journal's path, nothing kept in memory.
    result = resume(tmp_path / "run.journal", pb, clients=clients, clock=clock, bus=bus2)

    assert result.ok and result.summary == {"succeeded": 10}
    assert all(fixed(sandbox, t) for t in fleet.targets)
    assert rescue_instances(sandbox) == []
    # Finished steps were not run again; their outputs came from the journal.
    snapshot_runs = {e.target.key for e in events_of(events, StepStarted)
                     if e.step_id == "snapshot"}
    assert not snapshot_runs & snapshotted
    assert snapshot_runs | snapshotted == {t.key for t in targets}
    created = Counter(c.operation for c in sandbox.api_calls if not c.throttled)
    assert created["CreateSnapshot"] == 10 - len(snapshotted)
    assert Journal(tmp_path / "run.journal").run("run-x").status == "finished"


def test_resume_refuses_a_changed_playbook_and_a_dry_run(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        tmp_path: Path) -> None:
    ids = sandbox.build_fleet(FleetSpec(plain=1, azs=1)).instance_ids()
    source = tmp_path / "pb.yaml"
    source.write_text("version: 1\n")
    pb = playbook(step("tag", "test.tag"))
    pb = type(pb)(**{**pb.__dict__, "source": str(source)})
    journal = Journal(tmp_path / "run.journal")
    inspect = {"ec2-instance": "test.inspect"}
    Executor(pb, [Target("ec2-instance", ids[0], REGION)], clients=clients, clock=clock,
             bus=bus, journal=journal, run_id="run-1", inspect_actions=inspect).run()
    recorded = journal.run("run-1").playbook_sha256
    source.write_text("version: 1\n# edited\n")

    with pytest.raises(ResumeRefused) as refused:
        resume(journal, pb, clients=clients, clock=clock, bus=bus)

    # Built in code, it has no text: the journal keeps only the file's hash, as older
    # journals did.
    assert str(refused.value).startswith(
        f"{source} changed since run run-1 started (sha256 {recorded[:12]}... then, ")
    assert str(refused.value).endswith(
        "its journal holds no copy of it (an older remediate wrote it): restore the playbook "
        "the run started with, or run the edited file with --edited-playbook")

    Executor(pb, [Target("ec2-instance", ids[0], REGION)], clients=clients, clock=clock,
             bus=bus, journal=journal, run_id="run-2", dry_run=True,
             inspect_actions=inspect).run()
    with pytest.raises(ResumeRefused, match="run run-2 was a dry run: there is nothing to "):
        resume(journal, pb, clients=clients, clock=clock, bus=bus)


def test_resume_runs_only_the_journaled_playbook_unless_told_to_run_an_edited_one(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        tmp_path: Path) -> None:
    ids = sandbox.build_fleet(FleetSpec(plain=1, azs=1)).instance_ids()
    pb = replace(playbook(step("tag", "test.tag")), text="version: 1\n# as it started\n")
    edited = replace(pb, text="version: 1\n# edited\n")
    journal = Journal(tmp_path / "run.journal")
    inspect = {"ec2-instance": "test.inspect"}
    Executor(pb, [Target("ec2-instance", ids[0], REGION)], clients=clients, clock=clock,
             bus=bus, journal=journal, run_id="run-1", inspect_actions=inspect).run()
    assert journal.run("run-1").playbook_text == "version: 1\n# as it started\n"

    with pytest.raises(ResumeRefused) as refused:
        resume(journal, edited, clients=clients, clock=clock, bus=bus)
    assert str(refused.value) == (
        f"{pb.source} is not the playbook run run-1 started with: resume runs the copy "
        "journaled then (`remediate resume` loads it), or the edited file with "
        "--edited-playbook")

    resume(journal, edited, clients=clients, clock=clock, bus=bus, edited=True)

    assert journal.run("run-1").playbook_text == "version: 1\n# edited\n"


def test_resuming_a_journal_without_the_playbooks_text_journals_it(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        tmp_path: Path) -> None:
    """As an older remediate wrote it (a hash, no text): once the file is checked to be
    the same, its text is journaled, so later edits of the file do not matter."""
    ids = sandbox.build_fleet(FleetSpec(plain=1, azs=1)).instance_ids()
    source = tmp_path / "pb.yaml"
    source.write_text("version: 1\n", encoding="utf-8")
    pb = replace(playbook(step("tag", "test.tag")), source=str(source), text="version: 1\n")
    path = tmp_path / "run.journal"
    Executor(pb, [Target("ec2-instance", ids[0], REGION)], clients=clients, clock=clock,
             bus=bus, journal=Journal(path), run_id="run-1",
             inspect_actions={"ec2-instance": "test.inspect"}).run()
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE runs SET playbook_text = NULL")

    resume(path, pb, clients=clients, clock=clock, bus=bus)

    assert Journal(path).run("run-1").playbook_text == "version: 1\n"
