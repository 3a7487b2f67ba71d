"""Exit codes 1, 2 and 3 and `--concurrency`, from real `remediate` processes against a
sandbox server (what an operator's shell gets: boto3 over HTTP, moto's server answers)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import datetime
from pathlib import Path

import pytest

from cli_support import OFFLINE_REPAIR, REBOOT_FIRST, backups
from e2e_support import SandboxServer, remediate

MISSING = "ami-12345678"


@pytest.mark.slow
def test_exit_2_when_targets_are_refused_and_nothing_changed(
        sandbox_server: Callable[..., SandboxServer], tmp_path: Path) -> None:
    server = sandbox_server(fleet=2)
    before = server.root_states()

    # One after the other: a plan made while a run holds the targets says they are held.
    plan = remediate(["plan", OFFLINE_REPAIR, "--param", f"rescue_image_id={MISSING}"],
                     server.env(tmp_path), tmp_path / "plan.log", scaled=False)
    assert plan.finish(60) == 2, plan.stderr()
    run = remediate(["run", OFFLINE_REPAIR, "--yes", "--no-progress", "--param",
                     f"rescue_image_id={MISSING}", "--journal", str(tmp_path / "j.sqlite")],
                    server.env(tmp_path), tmp_path / "run.log")
    assert run.finish(60) == 2, run.stderr()
    # The plan says it once for the group of both.
    assert (f"\n      blocked by rescue-image-unusable: rescue image {MISSING} does not exist "
            "in us-east-1: no rescue instance for <id> (hint: ") in plan.stdout()
    for instance_id in server.instance_ids:
        line = (f"blocked by rescue-image-unusable: rescue image {MISSING} does not exist in "
                f"us-east-1: no rescue instance for {instance_id}")
        assert instance_id in plan.stdout()
        assert run.stderr().count(f"{instance_id} (us-east-1): refused: {line} (hint: ") == 1
    assert run.stderr().splitlines()[-1].endswith(" finished: 2 refused")
    assert server.root_states() == before
    assert all(backups(server.client("ec2"), i) == [] for i in server.instance_ids)


@pytest.mark.slow
def test_exit_3_for_a_bug_with_a_crash_log_and_nothing_changed(
        sandbox_server: Callable[..., SandboxServer], tmp_path: Path) -> None:
    server = sandbox_server(fleet=1)
    before = server.root_states()
    # The bug: target discovery raises (injected at interpreter start-up).
    bug = tmp_path / "bug"
    bug.mkdir()
    (bug / "sitecustomize.py").write_text(
        "import remediate.discovery\n\n\n"
        "def discover(*args, **kwargs):\n"
        "    raise ZeroDivisionError('division by zero')\n\n\n"
        "remediate.discovery.discover = discover\n", encoding="utf-8")
    env = {**server.env(tmp_path / "crashes"), "PYTHONPATH": str(bug)}

    run = remediate(["run", REBOOT_FIRST, "--yes", "--no-progress", "--journal",
                     str(tmp_path / "j.sqlite")], env, tmp_path / "run.log")

    assert run.finish(60) == 3
    first, second = run.stderr().splitlines()
    assert first == "unexpected error: ZeroDivisionError: division by zero"
    assert second.startswith(f"crash log: {tmp_path / 'crashes'}/crash-")
    log = Path(second.removeprefix("crash log: ")).read_text(encoding="utf-8")
    assert "Traceback (most recent call last):" in log
    assert log.rstrip().endswith("ZeroDivisionError: division by zero")
    assert server.root_states() == before


@pytest.mark.slow
def test_a_filter_aws_does_not_have_is_one_line_and_exit_1(
        sandbox_server: Callable[..., SandboxServer], tmp_path: Path) -> None:
    server = sandbox_server(fleet=1)

    plan = remediate(["plan", REBOOT_FIRST, "--filter", "bogus-filter=1"],
                     server.env(tmp_path), tmp_path / "plan.log", scaled=False)

    assert plan.finish(60) == 1
    assert plan.stderr() == (
        "error: account default, us-east-1: DescribeInstances failed: InvalidParameterValue: "
        "The filter 'bogus-filter' is invalid\n")


def in_flight_at_most(journal: Path) -> int:
    """The most targets that were between their first step's start and their last step's
    end at one moment, from the journal's step records."""
    with closing(sqlite3.connect(journal)) as db:
        spans = db.execute("SELECT target_key, MIN(started_at), MAX(finished_at) FROM steps "
                           "WHERE rollback=0 GROUP BY target_key").fetchall()
    edges = sorted([(datetime.fromisoformat(start), 1) for _, start, _ in spans]
                   + [(datetime.fromisoformat(end), -1) for _, _, end in spans])
    most = current = 0
    for _, change in edges:  # at equal times an end (-1) sorts before a start (+1)
        current += change
        most = max(most, current)
    return most


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [1, 2])
def test_concurrency_bounds_the_targets_in_flight(
        sandbox_server: Callable[..., SandboxServer], tmp_path: Path,
        concurrency: int) -> None:
    server = sandbox_server(fleet=4, clock_factor=400.0)
    # Every target in one batch, so only --concurrency holds them back.
    playbook = tmp_path / "reboot-all-at-once.yaml"
    playbook.write_text(Path(REBOOT_FIRST).read_text(encoding="utf-8").replace(
        "batches: [1, 100%]", "batches: [100%]"), encoding="utf-8")
    journal = tmp_path / "j.sqlite"

    run = remediate(["run", str(playbook), "--yes", "--no-progress", "--journal", str(journal),
                     "--param", "max_reboots=1", "--concurrency", str(concurrency)],
                    server.env(tmp_path), tmp_path / "run.log")

    # Plain targets: reboots do not fix them, so every one fails at verify (exit 2).
    assert run.finish(120) == 2, run.stderr()
    assert run.stderr().splitlines()[-1].endswith(" finished: 4 failed")
    assert in_flight_at_most(journal) == concurrency
    with closing(sqlite3.connect(journal)) as db:
        assert db.execute("SELECT status, COUNT(*) FROM targets GROUP BY status").fetchall() == [
            ("failed", 4)]
    assert {s.state for s in server.root_states().values()} == {"running"}
