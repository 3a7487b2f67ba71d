"""Inputs checked before the first AWS call: a value no target could take fails the
command in one line, exit 1, before anything is looked up or changed; never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import OFFLINE_REPAIR, REBOOT_FIRST, REPLACE_ROOT, CliSandbox, run_cli

AMI = "an AMI id (ami-...) or resolve:ssm:PARAMETER"
BOTH_RESCUE_STEPS = "steps prepare_rescue (rescue.prepare), attach (rescue.attach_volume)"

PARAMETER_ERRORS = [
    (REBOOT_FIRST, ["--param", "max_reboots=99999", "--param", "status_timeout=-5m"],
     "--param max_reboots=99999: step reboot (ec2.reboot) with.times: expected an integer "
     "from 1 to 10, found 99999 (an integer); --param status_timeout=-5m: step reboot "
     "(ec2.reboot) with.timeout: expected a duration from 1s to 168h (seconds, or text like "
     "30s, 5m, 1h30m), found '-5m' (a string)"),
    (OFFLINE_REPAIR, ["--param", "rescue_image_id="],
     f"--param rescue_image_id=: {BOTH_RESCUE_STEPS} with.rescue_image_id: expected {AMI} of "
     "1 to 4096 characters, found 0 characters"),
    # The README's own example (a placeholder) reached inspection and crashed it there.
    (OFFLINE_REPAIR, ["--param", "rescue_image_id=ami-0abc..."],
     f"--param rescue_image_id=ami-0abc...: {BOTH_RESCUE_STEPS} with.rescue_image_id: "
     f"expected {AMI}, found 'ami-0abc...' (a string)"),
    (OFFLINE_REPAIR, ["--param", "rescue_per_az=0"],
     "--param rescue_per_az=0: steps prepare_rescue (rescue.prepare), attach "
     "(rescue.attach_volume) with.max_per_az: expected an integer from 1 to 50, found 0 "
     "(an integer)"),
    # Only the step a `when` on the parameter lets run is judged (and it is).
    (REPLACE_ROOT, ["--param", "snapshot_id=snap-bad", "--accept", "root-replacement-data-loss"],
     "--param snapshot_id=snap-bad: step replace_from_snapshot (ec2.replace_root) "
     "with.snapshot_id: expected a snapshot id, found 'snap-bad' (a string)"),
    (REBOOT_FIRST, ["--param", "settle=${{ target.id }}"],
     "--param settle: expected a value, found a template ${{ target.id }} (parameter values "
     "are not rendered)"),
    (REBOOT_FIRST, ["--rate-limit", "ec2.mutating=nan/nan"],
     "--rate-limit expects BUCKET=BURST/RATE (e.g. ec2.mutating=50/5), got "
     "'ec2.mutating=nan/nan'"),
    (REBOOT_FIRST, ["--rate-limit", "ec2.mutating=inf/5"],
     "--rate-limit expects BUCKET=BURST/RATE (e.g. ec2.mutating=50/5), got "
     "'ec2.mutating=inf/5'"),
    (REBOOT_FIRST, ["--report", "json:out/run.json", "--report", "md:out/../out/run.json"],
     "--report md:out/../out/run.json writes the same file as --report json:out/run.json: "
     "give each report its own path"),
]


@pytest.mark.parametrize("command", ["plan", "run"])
@pytest.mark.parametrize(("playbook", "args", "message"), PARAMETER_ERRORS,
                         ids=[" ".join(a[:2]) for _, a, _ in PARAMETER_ERRORS])
def test_a_value_no_step_can_take_fails_before_any_aws_call(
        unchanged: CliSandbox, command: str, playbook: str, args: list[str], message: str,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    run_only = ["--yes", "--journal", "j.sqlite"] if command == "run" else []

    code = run_cli(command, playbook, *run_only, *args)

    assert (code, capsys.readouterr().err) == (1, f"error: {message}\n")
    assert unchanged.sandbox.api_calls == []
    assert list(tmp_path.iterdir()) == []


def test_replace_root_without_a_snapshot_skips_the_step_that_needs_one(
        unchanged: CliSandbox) -> None:
    """``snapshot_id`` unset: the step restoring from one never runs, so its empty value
    is no error (the run goes to the launch state instead)."""
    assert run_cli("plan", REPLACE_ROOT, "--accept", "root-replacement-data-loss") == 0


STOP_THEN_SCRIPT = """\
version: 1
name: stop-then-note
parameters:
  note: {type: string, default: fine}
targets:
  kind: ec2-instance
  tags: {incident: crowdstrike-2024-07-19}
steps:
  - id: stop
    action: ec2.stop
  - id: note
    action: ssm.run_command
    with:
      commands: ['Write-Output $Note']
      parameters:
        Note: "${{ params.note }} on ${{ target.id }}"
"""


def test_a_newline_for_a_script_is_refused_before_an_earlier_step_stops_anything(
        unchanged: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    playbook = tmp_path / "note.yaml"
    playbook.write_text(STOP_THEN_SCRIPT, encoding="utf-8")

    code = run_cli("run", str(playbook), "--yes", "--journal", str(tmp_path / "j.sqlite"),
                   "--param", "note=two\nlines")

    assert (code, capsys.readouterr().err) == (1, (
        "error: --param note='two\\nlines': step note (ssm.run_command) with.parameters.Note: "
        "refusing to put 'two\\nlines on ${{ target.id }}' into a script: it holds a control "
        "character (newline, NUL, ...)\n"))
    assert unchanged.sandbox.api_calls == []


def test_an_unset_parameter_inside_a_string_is_refused_rather_than_sent_as_none(
        unchanged: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    playbook = tmp_path / "note.yaml"
    playbook.write_text(STOP_THEN_SCRIPT.replace("default: fine", "description: optional"),
                        encoding="utf-8")

    assert run_cli("plan", str(playbook)) == 1

    assert capsys.readouterr().err == (
        "error: parameter note (unset; set it with --param note=...): step note "
        "(ssm.run_command) with.parameters.Note: the parameter is unset, but the step puts it "
        "inside a string\n")
    assert unchanged.sandbox.api_calls == []


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_clock_factor_that_is_not_a_finite_number_is_a_usage_error(
        unchanged: CliSandbox, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("plan", REBOOT_FIRST, "--clock-factor", value) == 1

    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        f"Error: Invalid value for '--clock-factor': {value!r} is not a finite number.")
    assert unchanged.sandbox.api_calls == []


def test_a_report_on_the_journal_is_refused(
        unchanged: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = str(tmp_path / "j.sqlite")

    assert run_cli("run", REBOOT_FIRST, "--yes", "--journal", journal,
                   "--report", f"json:{journal}") == 1

    assert capsys.readouterr().err == (
        f"error: --report json:{journal} writes the same file as --journal {journal}: give "
        "each report its own path\n")
    assert unchanged.sandbox.api_calls == []


# ---- playbooks that crashed the loader (exit 3) ---------------------------------------

HEAD = ("version: 1\nname: deep\n"
        "targets: {kind: ec2-instance, tags: {incident: crowdstrike-2024-07-19}}\n"
        "steps:\n  - id: reboot\n    action: ec2.reboot\n")
DEPTH_HINT = ("  hint: playbooks are shallow: a `when` needs a few levels of all/any/not; is "
              "this file generated? flatten it")


def _deep_lists(levels: int) -> str:
    return HEAD + "    with: {times: " + "[" * levels + "]" * levels + "}\n"


def _nested_nots(levels: int) -> str:
    return (HEAD + "    when: " + "{not: " * levels + "{value: target.id, exists: true}"
            + "}" * levels + "\n")


CRASHES = [
    # Deeper than Python's recursion limit: PyYAML's composer recursed out.
    (_deep_lists(5000), "7:80: values are nested more than 64 levels deep", DEPTH_HINT),
    # 500 nested `not:`: the loader recursed out building them.
    (_nested_nots(500), "7:383: values are nested more than 64 levels deep", DEPTH_HINT),
    # Python converts at most 4,300 digits to an int.
    (HEAD + "    with: {times: " + "9" * 5000 + "}\n",
     "7:19: cannot read this value: a number of 5,000 characters",
     "  hint: no setting takes a number this long; quote it if it is text"),
]


@pytest.mark.parametrize(("text", "where", "hint"), CRASHES,
                         ids=["5000-nested-lists", "500-nested-nots", "5000-digits"])
@pytest.mark.parametrize("command", ["validate", "plan"])
def test_a_playbook_that_crashed_the_loader_is_one_problem_and_exit_1(
        unchanged: CliSandbox, command: str, text: str, where: str, hint: str,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    playbook = tmp_path / "deep.yaml"
    playbook.write_text(text, encoding="utf-8")

    assert run_cli(command, str(playbook)) == 1

    err = capsys.readouterr()
    lines = (err.out + err.err).splitlines()
    assert lines[0] == f"{playbook}:{where}"
    assert lines[3] == hint
    assert "Traceback" not in err.err and "unexpected error" not in err.err
    assert unchanged.sandbox.api_calls == []
