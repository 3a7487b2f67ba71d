"""`remediate run PLAYBOOK --retry-failed REPORT|JOURNAL|RUN_ID`: only what an earlier run
did not fix (failed, rolled back, interrupted), and nothing else.

The story: route 1 (reboots) fixes the instances a reboot can fix and fails the
others; route 2 (the offline repair) then runs on exactly those others.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cli_support import (
    OFFLINE_REPAIR,
    REBOOT_FIRST,
    WORKSPACES_RECOVER,
    CliSandbox,
    backups,
    cli_sandbox,
    exit_err_calls,
    json_file,
    repair_problems,
    root_states,
    run_cli,
)
from remediate.sandbox import FleetSpec


@dataclass
class AfterRoute1:
    cli: CliSandbox
    folder: Path
    run_id: str
    failed: list[str]  # the plain instances: reboots do not fix them
    fixed: list[str]  # the reboot-fixable ones

    @property
    def report(self) -> Path:
        return self.folder / "route1.json"

    @property
    def journal(self) -> Path:
        return self.folder / "route1.sqlite"


@pytest.fixture(scope="module")
def route1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AfterRoute1]:
    folder = tmp_path_factory.mktemp("route1")
    with pytest.MonkeyPatch.context() as monkeypatch, \
            cli_sandbox(monkeypatch, FleetSpec(plain=2, reboot_fixable=2, azs=1)) as cli:
        code = run_cli("run", REBOOT_FIRST, "--yes", "--no-progress",
                       "--journal", str(folder / "route1.sqlite"),
                       "--report", f"json:{folder}/route1.json")
        assert code == 2
        report = json_file(folder / "route1.json")
        statuses = {t["id"]: t["status"] for t in report["targets"]}
        failed = sorted(cli.fleet.instance_ids("plain"))
        fixed = sorted(cli.fleet.instance_ids("reboot_fixable"))
        assert statuses == {**dict.fromkeys(failed, "failed"), **dict.fromkeys(fixed,
                                                                                "succeeded")}
        yield AfterRoute1(cli, folder, report["run_id"], failed, fixed)


def _source(route1: AfterRoute1, kind: str) -> list[str]:
    """``--retry-failed`` naming route 1 by its report, its journal, or its run id."""
    if kind == "report":
        return ["--retry-failed", str(route1.report)]
    if kind == "journal":
        return ["--retry-failed", str(route1.journal)]
    return ["--retry-failed", route1.run_id, "--journal", str(route1.journal)]


@pytest.mark.parametrize("kind", ["report", "journal", "run-id"])
def test_it_selects_the_targets_the_earlier_run_failed_from_its_report_journal_or_id(
        route1: AfterRoute1, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        kind: str) -> None:
    route1.cli.sandbox.reset_api_calls()
    capsys.readouterr()

    code = run_cli("run", OFFLINE_REPAIR, "--dry-run", *route1.cli.rescue_param,
                   *_source(route1, kind), "--report", f"json:{tmp_path}/retry.json")

    err = capsys.readouterr().err
    assert code == 0, err
    shown = str(route1.report if kind == "report" else route1.journal
                if kind == "journal" else route1.run_id)
    assert err.splitlines()[0] == (
        f"retrying 2 target(s) that failed, were rolled back or were interrupted in run "
        f"{route1.run_id} ({shown})")
    report = json_file(tmp_path / "retry.json")
    assert sorted(t["id"] for t in report["targets"]) == route1.failed
    assert route1.cli.mutating_calls() == []


def test_a_retry_can_be_planned_approved_and_applied(
        route1: AfterRoute1, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`plan --retry-failed ... --out`: the retry is a plan like any other."""
    route1.cli.sandbox.reset_api_calls()
    capsys.readouterr()

    code = run_cli("plan", OFFLINE_REPAIR, *route1.cli.rescue_param, "--retry-failed",
                   str(route1.report), "--out", str(tmp_path / "retry-plan.json"))

    assert code == 0, capsys.readouterr().err
    plan = json_file(tmp_path / "retry-plan.json")
    assert sorted(t["id"] for t in plan["targets"] if t["approved"]) == route1.failed
    assert len(plan["targets"]) == 2 and route1.cli.mutating_calls() == []


def test_a_retry_repairs_the_failed_targets_and_touches_no_other(
        route1: AfterRoute1, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = route1.cli
    before = root_states(cli.ec2, [*route1.failed, *route1.fixed])
    cli.sandbox.reset_api_calls()

    code = run_cli("run", OFFLINE_REPAIR, "--yes", "--no-progress", *cli.rescue_param,
                   "--retry-failed", str(route1.report), "--journal", str(tmp_path / "j.sqlite"),
                   "--report", f"json:{tmp_path}/route2.json")

    assert code == 0, capsys.readouterr().err
    for instance_id in route1.failed:
        assert repair_problems(cli.ec2, before[instance_id],
                               cli.sandbox.channel_file_present) == [], instance_id
    for instance_id in route1.fixed:
        assert [c.operation for c in cli.sandbox.api_calls
                if c.mutating and not c.dry_run and c.names(instance_id)] == [], instance_id
        assert backups(cli.ec2, instance_id) == []
        assert root_states(cli.ec2, [instance_id])[instance_id] == before[instance_id]
    assert sorted(t["id"] for t in json_file(tmp_path / "route2.json")["targets"]) == \
        route1.failed

    # That run fixed everything it worked on: retrying it has nothing to do.
    capsys.readouterr()
    code = run_cli("run", OFFLINE_REPAIR, "--yes", "--retry-failed", f"{tmp_path}/route2.json")
    run_id = json_file(tmp_path / "route2.json")["run_id"]
    assert (code, capsys.readouterr().err) == (
        1, f"error: --retry-failed {tmp_path}/route2.json: no target failed, was rolled back "
           f"or was interrupted in run {run_id}: nothing to retry\n")


def _report(tmp_path: Path, data: Any, name: str = "report.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def _target(instance_id: str, status: str) -> dict[str, str]:
    return {"kind": "ec2-instance", "id": instance_id, "region": "us-east-1",
            "account": "default", "status": status}


def test_failed_rolled_back_and_interrupted_are_retried_and_no_other_status(
        route1: AfterRoute1, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    statuses = ["failed", "rolled_back", "interrupted", "succeeded", "refused", "skipped"]
    ids = [*route1.failed, *route1.fixed, "i-0000000000000000a", "i-0000000000000000b"]
    path = _report(tmp_path, {"run_id": "r20240719-053000-a1b2c3", "dry_run": False,
                              "targets": [_target(i, s) for i, s in zip(ids, statuses,
                                                                         strict=True)]})
    capsys.readouterr()

    code = run_cli("run", REBOOT_FIRST, "--dry-run", "--retry-failed", str(path),
                   "--report", f"json:{tmp_path}/dry.json")

    assert code == 0, capsys.readouterr().err
    assert sorted(t["id"] for t in json_file(tmp_path / "dry.json")["targets"]) == sorted(
        ids[:3])


BAD_SOURCES = {
    "no-such-file": (lambda tmp: str(tmp / "nope.json"),
                     "--retry-failed {src}: no such file, and not a run id (expected a JSON "
                     "report written by --report json:PATH, a journal, or a run id such as "
                     "r20240719-053000-a1b2c3)"),
    "not-json": (lambda tmp: str(_report(tmp, "{\n  \"run_id\": }")),
                 "{src}:2:13: not valid JSON (Expecting value); expected the JSON report of a "
                 "run (--report json:PATH) or a journal (--journal)"),
    "not-a-report": (lambda tmp: str(_report(tmp, {"format": "remediate-plan"})),
                     "--retry-failed {src}: not a remediate report (no run_id and targets); "
                     "expected the JSON report of a run (--report json:PATH) or a journal "
                     "(--journal)"),
    "dry-run-report": (lambda tmp: str(_report(tmp, {"run_id": "r1", "dry_run": True,
                                                     "targets": []})),
                       "--retry-failed {src}: the report of a dry run (run r1): nothing was "
                       "run, so nothing failed"),
    "target-without-region": (lambda tmp: str(_report(tmp, {"run_id": "r1", "targets": [
                                  {"kind": "ec2-instance", "id": "i-1", "status": "failed"}]})),
                              "--retry-failed {src}: targets[0]: expected kind, id, region and "
                              "account (strings), as `--report json:PATH` writes them"),
    "unknown-run-id": (lambda tmp: "r20240719-053000-a1b2c3",
                       "--retry-failed {src}: no journal at {tmp}/none.sqlite to find that "
                       "run in (--journal names it)"),
}


@pytest.mark.parametrize("name", list(BAD_SOURCES))
def test_a_source_that_names_nothing_to_retry_is_one_line_exit_1_and_no_aws_call(
        route1: AfterRoute1, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        name: str) -> None:
    make, message = BAD_SOURCES[name]
    source = make(tmp_path)

    assert exit_err_calls(route1.cli, capsys, "run", REBOOT_FIRST, "--yes", "--retry-failed",
                          source, "--journal", str(tmp_path / "none.sqlite")) == (
        1, f"error: {message.format(src=source, tmp=tmp_path)}\n", 0)


def test_a_run_id_the_journal_does_not_hold_and_another_kind_of_target_are_refused(
        route1: AfterRoute1, capsys: pytest.CaptureFixture[str]) -> None:
    cli = route1.cli
    assert exit_err_calls(cli, capsys, "run", REBOOT_FIRST, "--retry-failed",
                          "r20240719-053000-a1b2c3", "--journal", str(route1.journal)) == (
        1, f"error: --retry-failed r20240719-053000-a1b2c3: {route1.journal} holds no run "
           "r20240719-053000-a1b2c3\n", 0)
    assert exit_err_calls(cli, capsys, "run", WORKSPACES_RECOVER, "--retry-failed",
                          str(route1.report)) == (
        1, f"error: --retry-failed {route1.report}: run {route1.run_id} worked on "
           f"ec2-instance targets; {WORKSPACES_RECOVER} works on workspace\n", 0)
    assert exit_err_calls(cli, capsys, "run", REBOOT_FIRST, "--retry-failed",
                          str(route1.report), "--target-ids", route1.failed[0]) == (
        1, "error: --retry-failed selects the targets by itself: leave out --target-ids\n", 0)
