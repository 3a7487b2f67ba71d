"""`remediate run`: the built-in playbooks through the whole command, against the sandbox."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from cli_support import (
    OFFLINE_REPAIR,
    REBOOT_FIRST,
    CliSandbox,
    backups,
    cli_sandbox,
    json_file,
    misplaced_roots,
    notified_subjects,
    point_commands_at,
    repair_problems,
    rescue_instances,
    root_states,
    run_cli,
    sns_inbox,
    tags,
)
from remediate.sandbox import FleetSpec

RUN_KEYS = {"run_id", "playbook", "dry_run", "started_at", "finished_at", "summary", "targets"}
SUMMARY_KEYS = {"succeeded", "failed", "skipped", "rolled_back"}
TARGET_KEYS = {"id", "region", "status", "findings", "steps"}
STEP_KEYS = {"id", "action", "status", "attempts", "started_at", "finished_at", "error"}
OFFLINE_STEPS = ["prepare_rescue", "backup", "stop", "detach", "attach", "repair", "release",
                 "reattach", "restore", "verify", "confirm_backup"]


@pytest.fixture
def two(monkeypatch: pytest.MonkeyPatch) -> Iterator[CliSandbox]:
    with cli_sandbox(monkeypatch, FleetSpec(plain=2, azs=2)) as cli:
        yield cli


def test_offline_repair_fixes_every_target_and_puts_everything_back(
        two: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = two.fleet.instance_ids()
    before = root_states(two.ec2, ids)
    reports = tmp_path / "reports"

    code = run_cli("run", OFFLINE_REPAIR, "--yes", "--no-progress", *two.rescue_param,
                   "--journal", str(tmp_path / "j.sqlite"),
                   "--report", f"json:{reports}/run.json", "--report", f"junit:{reports}/run.xml",
                   "--report", f"md:{reports}/run.md")

    err = capsys.readouterr().err
    assert code == 0, err
    for instance_id in ids:
        assert repair_problems(two.ec2, before[instance_id],
                               two.sandbox.channel_file_present) == [], instance_id
    assert rescue_instances(two.ec2) == []
    assert misplaced_roots(two.ec2, before) == []
    report = json_file(reports / "run.json")
    run_id = report["run_id"]
    assert err.startswith(f"run {run_id}: journal {tmp_path / 'j.sqlite'} (`remediate resume ")
    assert err.splitlines()[-1] == f"run {run_id} finished: 2 succeeded"
    for instance_id in ids:
        assert [(tags(s)["remediate:run-id"], tags(s)["remediate:target"], s["VolumeId"])
                for s in backups(two.ec2, instance_id)] == [
            (run_id, instance_id, before[instance_id].volume_id)]

    assert report.keys() >= RUN_KEYS and report["summary"].keys() >= SUMMARY_KEYS
    assert (report["run_id"], report["playbook"], report["dry_run"]) == (
        run_id, OFFLINE_REPAIR, False)
    assert report["summary"]["succeeded"] == 2 and report["summary"]["failed"] == 0
    assert sorted(t["id"] for t in report["targets"]) == sorted(ids)
    for target in report["targets"]:
        assert target.keys() >= TARGET_KEYS and target["status"] == "succeeded"
        assert target["region"] == "us-east-1"
        assert [s["id"] for s in target["steps"]] == OFFLINE_STEPS
        assert all(s.keys() >= STEP_KEYS and s["status"] == "succeeded" and s["error"] is None
                   for s in target["steps"])

    junit = ET.parse(reports / "run.xml").getroot()
    assert (junit.get("tests"), junit.get("failures"), junit.get("errors")) == ("2", "0", "0")
    assert sorted(c.get("name") or "" for c in junit.iter("testcase")) == sorted(ids)

    markdown = (reports / "run.md").read_text(encoding="utf-8")
    assert markdown.startswith(f"# remediate run: {OFFLINE_REPAIR}\n")
    assert "**2 targets: 2 fixed.**" in markdown
    assert "| default/us-east-1 | 2 | " in markdown  # fixed, per account and Region


def test_refused_and_rolled_back_targets_exit_2_and_are_left_as_they_were(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    with cli_sandbox(monkeypatch, FleetSpec(plain=1, stop_protected=1, azs=1)) as cli:
        plain = cli.fleet.instance_ids("plain")[0]
        guarded = cli.fleet.instance_ids("stop_protected")[0]
        before = root_states(cli.ec2, [plain, guarded])
        cli.sandbox.fail("SendCommand", "AccessDeniedException",
                         "User is not authorized to perform: ssm:SendCommand")

        code = run_cli("run", OFFLINE_REPAIR, "--yes", "--no-progress", *cli.rescue_param,
                       "--journal", str(tmp_path / "j.sqlite"),
                       "--report", f"json:{tmp_path}/run.json")

        err = capsys.readouterr().err
        assert code == 2, err
        # Refused before anything was done to it.
        assert f"{guarded} (us-east-1): refused: " in err and "stop-protection" in err
        assert root_states(cli.ec2, [guarded])[guarded] == before[guarded]
        assert backups(cli.ec2, guarded) == []
        # Rolled back: its own root volume back where it was, running, still broken.
        assert root_states(cli.ec2, [plain])[plain] == before[plain]
        assert cli.sandbox.channel_file_present(before[plain].volume_id)
        assert misplaced_roots(cli.ec2, before) == [] and rescue_instances(cli.ec2) == []
        statuses = {t["id"]: t["status"] for t in json_file(tmp_path / "run.json")["targets"]}
        assert statuses == {plain: "rolled_back", guarded: "refused"}


def test_notify_publishes_the_start_each_batch_and_the_summary_to_sns(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with cli_sandbox(monkeypatch, FleetSpec(plain=2, azs=1)) as cli:
        inbox = sns_inbox(cli.sandbox)

        code = run_cli("run", OFFLINE_REPAIR, "--yes", "--no-progress", *cli.rescue_param,
                       "--journal", str(tmp_path / "j.sqlite"), "--notify",
                       f"sns:{inbox.topic_arn}")

        assert code == 0
        notes = inbox.messages()
    assert [subject for subject, _ in notes] == notified_subjects(OFFLINE_REPAIR, 2)
    run_id = notes[0][1]["run_id"]
    assert notes[0][1] == {"run_id": run_id, "targets": 2, "steps": OFFLINE_STEPS,
                           "dry_run": False}
    assert [(b["batch"], b["succeeded"], b["failed"]) for _, b in notes[1:3]] == [
        (1, 1, 0), (2, 1, 0)]
    assert notes[3][1] == {"run_id": run_id, "summary": {"succeeded": 2}}


def test_without_yes_and_without_a_terminal_it_refuses_and_changes_nothing(
        two: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    before = root_states(two.ec2, two.fleet.instance_ids())

    code = run_cli("run", OFFLINE_REPAIR, "--no-progress", *two.rescue_param)

    assert code == 1
    assert capsys.readouterr().err == (
        "error: refusing to change anything without confirmation: stdin is not a terminal; "
        "review `remediate plan` and pass --yes\n")
    assert two.mutating_calls() == []
    assert root_states(two.ec2, two.fleet.instance_ids()) == before


class _Terminal(io.StringIO):
    """Keyboard input at a terminal."""

    def isatty(self) -> bool:
        return True


def test_at_a_terminal_it_shows_the_audit_and_a_no_changes_nothing(
        two: CliSandbox, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    point_commands_at(monkeypatch, two.clock, two.sandbox.boto3_session(), interactive=True)
    monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))

    code = run_cli("run", OFFLINE_REPAIR, "--no-progress", *two.rescue_param)

    err = capsys.readouterr().err
    assert code == 1
    assert f"{OFFLINE_REPAIR}: 2 targets selected, 2 to work on, 0 refused\n" in err
    assert err.endswith("Go ahead? [y/N]: error: not confirmed: nothing was changed\n")
    assert two.mutating_calls() == []


def test_after_the_canary_a_no_leaves_the_other_targets_untouched(
        two: CliSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    point_commands_at(monkeypatch, two.clock, two.sandbox.boto3_session(), interactive=True)
    monkeypatch.setattr(sys, "stdin", _Terminal("y\nn\n"))
    canary, rest = sorted(two.fleet.instance_ids())  # batches: in (account, Region, id) order
    before = root_states(two.ec2, [canary, rest])

    code = run_cli("run", OFFLINE_REPAIR, "--no-progress", *two.rescue_param,
                   "--journal", str(tmp_path / "j.sqlite"))

    err = capsys.readouterr().err
    assert code == 2, err  # not every target was fixed: a script must not read success
    assert ("canary batch done (1 target): 1 succeeded, 0 failed, 0 rolled back, 0 refused; "
            "failure budget: 0 failed, 0 allowed; 1 target to go\n") in err
    assert "Go on with the remaining targets? [y/N]: " in err
    assert f"{rest} (us-east-1): skipped: not confirmed after the canary batch" in err
    assert repair_problems(two.ec2, before[canary], two.sandbox.channel_file_present) == []
    assert root_states(two.ec2, [rest])[rest] == before[rest]
    assert backups(two.ec2, rest) == []
    assert two.sandbox.channel_file_present(before[rest].volume_id)


def test_an_sns_topic_that_does_not_exist_fails_before_anything_runs(
        two: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    topic = "arn:aws:sns:us-east-1:123456789012:nosuch"

    code = run_cli("run", OFFLINE_REPAIR, "--yes", "--no-progress", *two.rescue_param,
                   "--journal", str(tmp_path / "j.sqlite"), "--notify", f"sns:{topic}")

    assert code == 1
    assert capsys.readouterr().err == (
        f"error: --notify: SNS topic {topic} does not exist (NotFound: Topic does not "
        "exist)\n")
    # Asked before the targets were even looked up.
    assert [c.operation for c in two.sandbox.api_calls] == ["GetTopicAttributes"]
    assert not (tmp_path / "j.sqlite").exists()


def test_a_publish_that_fails_mid_run_is_a_one_line_warning(
        two: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inbox = sns_inbox(two.sandbox)
    before = root_states(two.ec2, two.fleet.instance_ids())
    two.sandbox.fail("Publish", "AuthorizationError",
                     "User is not authorized to perform: SNS:Publish", times=2)

    code = run_cli("run", OFFLINE_REPAIR, "--yes", "--no-progress", *two.rescue_param,
                   "--journal", str(tmp_path / "j.sqlite"), "--notify", f"sns:{inbox.topic_arn}")

    err = capsys.readouterr().err
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        f"warning: could not publish 'remediate run started: {OFFLINE_REPAIR}' to "
        f"{inbox.topic_arn}: AuthorizationError: User is not authorized to perform: "
        "SNS:Publish; the run goes on",
        f"warning: could not publish 'remediate {OFFLINE_REPAIR}: batch 1/2 done' to "
        f"{inbox.topic_arn}: AuthorizationError: User is not authorized to perform: "
        "SNS:Publish; the run goes on"]
    assert "Traceback" not in err
    assert [subject for subject, _ in inbox.messages()] == [
        f"remediate {OFFLINE_REPAIR}: batch 2/2 done", f"remediate {OFFLINE_REPAIR}: finished"]
    for instance_id, state in before.items():
        assert repair_problems(two.ec2, state, two.sandbox.channel_file_present) == [], \
            instance_id


def test_the_prompt_counts_every_selected_target_and_lists_only_the_playbooks_risks(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    with cli_sandbox(monkeypatch, FleetSpec(plain=1, reboot_fixable=1, reboots_to_fix=1,
                                            instance_store=1, stop_protected=1,
                                            azs=1)) as cli:
        fixable = cli.fleet.instance_ids("reboot_fixable")[0]
        # Route 1 first: a reboot fixes one; the others are still broken.
        assert run_cli("run", REBOOT_FIRST, "--yes", "--no-progress", "--target-ids",
                       fixable, "--journal", str(tmp_path / "j.sqlite")) == 0
        point_commands_at(monkeypatch, cli.clock, cli.sandbox.boto3_session(),
                          interactive=True)
        monkeypatch.setattr(sys, "stdin", _Terminal("n\nn\n"))
        capsys.readouterr()
        cli.sandbox.reset_api_calls()

        assert run_cli("run", OFFLINE_REPAIR, "--no-progress", *cli.rescue_param) == 1
        offline = capsys.readouterr().err
        assert run_cli("run", REBOOT_FIRST, "--no-progress") == 1
        reboot = capsys.readouterr().err
        assert cli.mutating_calls() == []  # both answered no
    assert f"{OFFLINE_REPAIR}: 4 targets selected, 1 to work on, 2 refused, 1 skipped\n" in offline
    # Offline repair stops the instances: instance-store data and public IPs are at risk.
    assert "x instance-store-data-loss [ack]" in offline
    assert "x public-ip-will-change [info]" in offline
    # A reboot risks neither, nor is stop protection in its way: none of it is listed.
    assert f"{REBOOT_FIRST}: 4 targets selected, 3 to work on, 0 refused, 1 skipped\n" in reboot
    for kind in ("instance-store-data-loss", "public-ip-will-change", "stop-protection"):
        assert kind not in reboot
    assert "x already-healthy [info]" in reboot
