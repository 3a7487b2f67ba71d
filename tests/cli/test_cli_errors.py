"""Errors a user can cause: one line each, exit 1, nothing changed; a bug: exit 3, crash log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cli_support import (
    OFFLINE_REPAIR,
    REBOOT_FIRST,
    ROOT,
    CliSandbox,
    point_commands_at,
    run_cli,
)
from remediate.clock import VirtualClock

RESCUE = "--param=rescue_image_id=ami-12345678"
PARAMS = ("(its parameters: rescue_image_id, rescue_instance_type, rescue_per_az, "
          "bitlocker_keys, rescue_instance_profile, hold_capacity)")


USAGE_ERRORS = [
    (["--param", "bogus=1", RESCUE],
     f"--param bogus: the playbook has no parameter 'bogus' {PARAMS}"),
    (["--param", "bogus", RESCUE], "--param expects KEY=VALUE, got 'bogus'"),
    (["--tag", "=x", RESCUE], "--tag expects KEY=VALUE (or KEY), got '=x'"),
    (["--filter", "instance-type", RESCUE],
     "--filter expects NAME=VALUE[,VALUE...], got 'instance-type'"),
    (["--rate-limit", "ec2.mutating=5", RESCUE],
     "--rate-limit expects BUCKET=BURST/RATE (e.g. ec2.mutating=50/5), got 'ec2.mutating=5'"),
    (["--rate-limit", "ec2.mutating=0/1", RESCUE],
     "--rate-limit expects BUCKET=BURST/RATE (e.g. ec2.mutating=50/5), got 'ec2.mutating=0/1'"),
    (["--rate-limit", "ec2.mutate=50/5", RESCUE],
     "--rate-limit: unknown bucket 'ec2.mutate' (did you mean 'ec2.mutating'?); name a "
     "category (every API of it: ec2.describe, ec2.describe-unfiltered, ec2.mutating, "
     "ec2.create-snapshot, ec2.create-tags, ec2.run-instances, ec2.start-instances, "
     "ec2.run-instances-resource, ec2.start-instances-resource, ec2.stop-instances-resource, "
     "ec2.terminate-instances-resource, ssm.send-command, ssm.describe, ssm.get-parameter, "
     "workspaces.mutating, workspaces.describe, workspaces.tags, sns.publish, sts.describe, "
     "dynamodb.describe, kms.describe, servicequotas.describe, iam.describe, "
     "secretsmanager.describe, leases.write, states.start-execution, states.describe, "
     "states.history, states.mutating) or one EC2 API (e.g. ec2.AttachVolume)"),
    (["--rate-limit", "ec2.AttachVolumes=10/1", RESCUE],
     "--rate-limit: unknown bucket 'ec2.AttachVolumes' (did you mean 'ec2.AttachVolume'?); "),
    (["--report", "xml:out.xml", RESCUE],
     "unknown report format 'xml' in 'xml:out.xml': use json:PATH, junit:PATH, md:PATH, "
     "html:PATH"),
    (["--report", "json", RESCUE], "report 'json' has no path: use json:PATH"),
    (["--tag", "incident=other-outage", RESCUE],
     "no targets matched kind ec2-instance, tags incident=other-outage, filters "
     "platform=windows in us-east-1"),
    (["--region", "us-esat-1", RESCUE],
     "unknown AWS Region 'us-esat-1' (did you mean us-west-1 or us-east-1?)"),
    (["--region", "xx-nowhere-9", RESCUE],
     "unknown AWS Region 'xx-nowhere-9'; botocore "),
    # An unset shell variable must not widen the selection to the whole fleet.
    (["--target-ids", "", RESCUE],
     "--target-ids has an empty value (''): give at least one id, or leave the option out "
     "to use the playbook's selector"),
    (["--target-ids=i-1,,i-2", RESCUE],
     "--target-ids has an empty value ('i-1,,i-2'): give at least one id"),
    (["--region=", RESCUE], "--region has an empty value (''): give at least one id"),
]


CASES = [(command, args, message) for command in ("run", "plan")
         for args, message in USAGE_ERRORS] + [
    ("run", ["--notify", "email:sre@example.com", RESCUE],
     "--notify email:sre@example.com: expected sns:TOPIC_ARN, e.g. "
     "sns:arn:aws:sns:us-east-1:123456789012:outage-bridge")]


@pytest.mark.parametrize(("command", "args", "message"), CASES,
                         ids=[f"{c} {' '.join(a[:2]) or 'missing-param'}" for c, a, _ in CASES])
def test_a_usage_error_is_one_line_and_exit_1(
        unchanged: CliSandbox, command: str, args: list[str], message: str,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_only = ["--yes", "--journal", str(tmp_path / "j.sqlite")] if command == "run" else []
    code = run_cli(command, OFFLINE_REPAIR, *run_only, *args)

    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: {message}"), err
    if not message.startswith("no targets matched"):  # found out before asking AWS anything
        assert unchanged.sandbox.api_calls == []


@pytest.mark.parametrize(("args", "line"), [
    (["run", OFFLINE_REPAIR, "--accept", "data-loss"],
     "Error: Invalid value for '--accept': 'data-loss' is not one of "
     "'instance-store-data-loss', 'spot-persistent', 'same-ami-rescue', "
     "'root-replacement-data-loss', 'workspace-restore-data-loss', "
     "'workspace-rebuild-data-loss'."),
    (["plan", OFFLINE_REPAIR, "--format", "yaml"],
     "Error: Invalid value for '--format': 'yaml' is not one of 'text', 'json', 'md'."),
    (["run", OFFLINE_REPAIR, "--limit", "0"],
     "Error: Invalid value for '--limit': 0 is not in the range x>=1."),
    (["run"], "Error: Missing argument 'PLAYBOOK' (or --plan FILE, an approved plan)."),
    # A dry run keeps no journal: the option is not offered rather than ignored.
    (["plan", OFFLINE_REPAIR, "--journal", "j.sqlite"], "Error: No such option '--journal'."),
    (["resume"], "Error: Missing argument 'JOURNAL'."),
])
def test_a_bad_option_shows_click_usage_and_exit_1(
        unchanged: CliSandbox, args: list[str], line: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(*args) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"Usage: remediate {args[0]} [OPTIONS] ")
    assert err.splitlines()[-1] == line


def test_an_invalid_playbook_prints_every_problem_and_runs_nothing(
        unchanged: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    playbook = tmp_path / "typo.yaml"
    playbook.write_text("version: 1\nname: typo\ntargets:\n  kind: ec2-instance\n"
                        "  tags: {incident: crowdstrike-2024-07-19}\n"
                        "steps:\n  - id: stop\n    action: ec2.stopp\n", encoding="utf-8")

    assert run_cli("run", str(playbook), "--yes") == 1

    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{playbook}:8:13: steps[0].action: unknown action 'ec2.stopp'"
    assert err[-1] == (f"error: {playbook}: 1 problem; nothing was run "
                       f"(see `remediate validate {playbook}`)")


def test_a_missing_playbook_is_one_problem(
        unchanged: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("plan", "no-such-playbook.yaml") == 1
    assert capsys.readouterr().err == (
        "no-such-playbook.yaml:1:1: cannot read the file: No such file or directory\n"
        "error: no-such-playbook.yaml: 1 problem; nothing was run "
        "(see `remediate validate no-such-playbook.yaml`)\n")


def test_more_targets_than_max_targets_is_refused(
        unchanged: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    playbook = tmp_path / "guarded.yaml"
    text = (ROOT / "playbooks" / "ec2-reboot-first.yaml").read_text(encoding="utf-8")
    playbook.write_text(text.replace("guards:\n", "guards:\n  max_targets: 1\n"),
                        encoding="utf-8")

    assert run_cli("run", str(playbook), "--yes") == 1

    assert capsys.readouterr().err == (
        f"error: 2 targets selected, but {playbook} allows at most 1 (guards.max_targets): "
        "narrow the selection with --tag, --filter, --target-ids or --limit\n")
    # --limit narrows it enough (a dry run, so the module's fleet stays as it is)
    assert run_cli("plan", str(playbook), "--limit", "1") == 0


def test_no_credentials_is_one_line(
        unchanged: CliSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """No sandbox session: the default credentials chain, with nothing in it."""
    point_commands_at(monkeypatch, VirtualClock(), session=None)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        empty = tmp_path / name.lower()
        empty.write_text("", encoding="utf-8")
        monkeypatch.setenv(name, str(empty))

    assert run_cli("run", OFFLINE_REPAIR, "--yes", RESCUE) == 1

    assert capsys.readouterr().err == (
        "error: account default: no AWS credentials found (set AWS_PROFILE or "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, run `aws sso login`, or give the "
        "account a profile)\n")


def test_an_unknown_profile_is_one_line(
        unchanged: CliSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "config"
    empty.write_text("", encoding="utf-8")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))

    assert run_cli("plan", OFFLINE_REPAIR, "--profile", "prod-recovery", RESCUE) == 1

    assert capsys.readouterr().err == (
        "error: account default: AWS profile 'prod-recovery' not found in ~/.aws/config or "
        "~/.aws/credentials\n")


def test_targets_another_live_run_holds_are_refused_naming_it(
        unchanged: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Another process (another operator's run) holds the targets' locks in the journal."""
    journal = tmp_path / "shared.sqlite"
    keys = [f"default/us-east-1/{i}" for i in unchanged.fleet.instance_ids()]
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from remediate.journal import Journal; "
         f"Journal({str(journal)!r}).lock_targets('r-other', {keys!r}, '2024-07-19T05:00:00'); "
         "print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"

        code = run_cli("run", REBOOT_FIRST, "--yes", "--no-progress", "--journal", str(journal))
    finally:
        holder.communicate("")
    err = capsys.readouterr().err
    assert code == 2
    for instance_id, key in zip(unchanged.fleet.instance_ids(), keys, strict=True):
        assert (f"{instance_id} (us-east-1): refused: {key} is locked by run r-other "
                f"(pid {holder.pid} on ") in err
    assert "Traceback" not in err


def test_a_bug_exits_3_with_a_crash_log(
        unchanged: CliSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("remediate.discovery.discover", broken)
    monkeypatch.setenv("REMEDIATE_CRASH_DIR", str(tmp_path / "crashes"))

    assert run_cli("plan", OFFLINE_REPAIR, RESCUE) == 3

    err = capsys.readouterr().err.splitlines()
    assert err[0] == "unexpected error: ZeroDivisionError: division by zero"
    assert err[1].startswith(f"crash log: {tmp_path / 'crashes'}/crash-") and len(err) == 2
    log = Path(err[1].removeprefix("crash log: ")).read_text(encoding="utf-8")
    assert log.startswith("remediate ")
    assert "Traceback (most recent call last):" in log
    assert log.rstrip().endswith("ZeroDivisionError: division by zero")


def test_resume_without_a_journal_is_one_line(
        unchanged: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("resume", str(tmp_path / "nope.sqlite")) == 1
    assert capsys.readouterr().err == f"error: no journal at {tmp_path / 'nope.sqlite'}\n"



@pytest.mark.parametrize(("args", "message"), [
    (["run", REBOOT_FIRST, "--yes", "--journal", "/proc/x/j.sqlite"],
     "error: --journal /proc/x/j.sqlite: cannot create /proc/x: No such file or directory"),
    (["plan", REBOOT_FIRST, "--report", "json:/proc/x.json"],
     "error: --report json:/proc/x.json: cannot write in /proc: No such file or directory"),
    (["run", REBOOT_FIRST, "--yes", "--report", f"md:{REBOOT_FIRST}/run.md"],
     f"error: --report md:{REBOOT_FIRST}/run.md: {REBOOT_FIRST} is not a folder"),
], ids=["journal", "report", "report-under-a-file"])
def test_a_journal_or_report_that_cannot_be_written_fails_before_any_aws_call(
        unchanged: CliSandbox, args: list[str], message: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(*args) == 1

    assert capsys.readouterr().err == f"{message}\n"
    assert unchanged.sandbox.api_calls == []


def test_resuming_a_file_that_is_not_a_journal_is_one_line(
        unchanged: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")

    assert run_cli("resume", str(passwd)) == 1

    assert capsys.readouterr().err == (
        f"error: {passwd} is not a remediate journal: file is not a database\n")
    assert passwd.read_text(encoding="utf-8") == "root:x:0:0:root:/root:/bin/bash\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passwd"]
    assert unchanged.sandbox.api_calls == []


@pytest.mark.parametrize(("args", "line"), [
    (["--fleet", "-3"], "Error: Invalid value for '--fleet': -3 is not in the range x>=0."),
    (["--workspaces", "-1"],
     "Error: Invalid value for '--workspaces': -1 is not in the range x>=0."),
    (["--clock-factor", "0"],
     "Error: Invalid value for '--clock-factor': 0.0 is not in the range x>0."),
    (["--clock-factor", "-60"],
     "Error: Invalid value for '--clock-factor': -60.0 is not in the range x>0."),
    (["--port", "70000"],
     "Error: Invalid value for '--port': 70000 is not in the range 0<=x<=65535."),
    (["--lose-replies", "0"],
     "Error: Invalid value for '--lose-replies': 0.0 is not in the range 0<x<=1."),
    (["--lose-replies", "1.5"],
     "Error: Invalid value for '--lose-replies': 1.5 is not in the range 0<x<=1."),
    (["--lose-replies", "nan"],
     "Error: Invalid value for '--lose-replies': nan is not in the range 0<x<=1."),
    (["--lose-replies", "0.5", "--seed", "x"],
     "Error: Invalid value for '--seed': 'x' is not a valid integer."),
])
def test_sandbox_serve_refuses_impossible_numbers(
        args: list[str], line: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("sandbox", "serve", *args) == 1
    err = capsys.readouterr().err
    assert err.startswith("Usage: remediate sandbox serve [OPTIONS]")
    assert err.splitlines()[-1] == line


def test_a_bad_io_worker_count_is_one_line_and_exit_1(
        unchanged: CliSandbox, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REMEDIATE_IO_WORKERS", "lots")

    assert run_cli("plan", OFFLINE_REPAIR, RESCUE, "--no-rehearsal") == 1

    assert capsys.readouterr().err == (
        "error: REMEDIATE_IO_WORKERS='lots': expected a whole number of I/O threads, at "
        "least 1 (hint: unset it for 16 per account and Region, up to 256)\n")
