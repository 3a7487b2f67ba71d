"""What `remediate run` and `resume` print, and how their reports agree with it (issue 16).

Each test runs the command in this process against the sandbox, with the progress
bars on (``--progress``: a captured stderr is no terminal, so rich draws the bars
once, when they stop, in a 120-column terminal) and
asserts the exact text, the exit code, every report and the end state in AWS.
"""

from __future__ import annotations

import io
import re
import shutil
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.file_proxy import FileProxy
from rich.live import _RefreshThread

from cli_support import (
    OFFLINE_REPAIR,
    cli_sandbox,
    ctrl_c_after,
    json_file,
    moving_clock,
    point_commands_at,
    repair_problems,
    rescue_instances,
    root_states,
    run_cli,
    status_ok,
    when_step_finishes,
)
from remediate.reporters.markdown_blocks import CHAT_WIDTH
from remediate.sandbox import FleetSpec


class Keyboard(io.StringIO):
    """Answers typed at a terminal; ``on_read`` sees each question before its answer."""

    def __init__(self, answers: str, on_read: Callable[[], None]) -> None:
        super().__init__(answers)
        self.on_read = on_read

    def isatty(self) -> bool:
        return True

    def readline(self, size: int | None = -1) -> str:
        self.on_read()
        return super().readline(size)


def repainting() -> list[str]:
    """rich's threads that redraw live progress bars and have not been told to stop (one
    told may take a moment to end: its ``done`` is set at once)."""
    return [t.name for t in threading.enumerate()
            if isinstance(t, _RefreshThread) and not t.done.is_set()]


def status(err: str) -> str:
    """The last drawing of the status line above the bars."""
    lines = [line for line in err.splitlines() if line.startswith("targets: ")]
    assert lines, err
    return lines[-1]


def bar(err: str, name: str) -> list[str]:
    """The last drawing of bar ``name``: its words, the bar itself left out."""
    lines = [line for line in err.splitlines() if line.split()[:1] == [name]]
    assert lines, err
    words = [w for w in lines[-1].split() if not set(w) <= set("━╸╺")]  # not the bar
    return words[:-1]  # name, M/N, detail (the ETA left out)


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")


@pytest.mark.parametrize("moving", [False, True], ids=["virtual-clock", "moving-clock"])
def test_the_canary_question_stops_the_bars_says_how_the_canary_fared_and_defaults_to_no(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        moving: bool) -> None:
    with cli_sandbox(monkeypatch, FleetSpec(plain=2, stop_protected=1, azs=1),
                     clock=moving_clock() if moving else None) as cli:
        point_commands_at(monkeypatch, cli.clock, cli.sandbox.boto3_session(),
                          interactive=True)
        canary, rest = sorted(cli.fleet.instance_ids("plain"))
        guarded = cli.fleet.instance_ids("stop_protected")[0]
        before = root_states(cli.ec2, [canary, rest, guarded])
        asked: list[tuple[str, list[str]]] = []
        monkeypatch.setattr(sys, "stdin", Keyboard(
            "y\n\n", lambda: asked.append((capsys.readouterr().err, repainting()))))

        code = run_cli("run", OFFLINE_REPAIR, "--progress", *cli.rescue_param,
                       "--journal", str(tmp_path / "j.sqlite"))

        after = capsys.readouterr().err
        assert code == 2, after  # the rest was not fixed: a script must not read success
        (go_ahead, _), (canary_time, threads) = asked
        refusal = f"blocked by stop-protection: {guarded} has DisableApiStop set"
        assert go_ahead.count(refusal) == 1  # listed by the question before the run
        assert threads == []  # nothing repaints the bars while the operator reads
        lines = canary_time.splitlines()
        assert lines[-2:] == [
            "canary batch done (1 target): 1 succeeded, 0 failed, 0 rolled back, 0 refused; "
            "failure budget: 0 failed, 0 allowed; 1 target to go",
            "Go on with the remaining targets? [y/N]: "]
        # The bars, frozen just above the summary: the canary fixed, the refused one out.
        assert bar(canary_time, "targets") == ["targets", "2/3"]
        assert status(canary_time) == ("targets: 1 succeeded, 1 refused; in flight 0; "
                                       "retries 0; API retries 0 (0 throttled)")
        assert bar(canary_time, "verify") == ["verify", "1/2", "failed", "0", "running", "0"]
        # The refusal is not printed again by the run (nor after the answer).
        assert refusal not in canary_time + after
        # An empty answer is no: the rest is left untouched.
        assert f"{rest} (us-east-1): skipped: not confirmed after the canary batch" in after
        assert bar(after, "targets")[:2] == ["targets", "3/3"]
        assert repair_problems(cli.ec2, before[canary], cli.sandbox.channel_file_present) == []
        assert root_states(cli.ec2, [rest, guarded]) == {
            rest: before[rest], guarded: before[guarded]}
        assert rescue_instances(cli.ec2) == []


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_at_a_terminal_the_question_is_written_out_not_held_under_the_bars(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """On a terminal rich's live display holds what others write to stderr until a newline:
    the question, which has none, did not show ("Go on with the remaining targets? :")."""
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: stderr is a terminal
    with cli_sandbox(monkeypatch, FleetSpec(plain=2, azs=1)) as cli:
        point_commands_at(monkeypatch, cli.clock, cli.sandbox.boto3_session(),
                          interactive=True)
        before = root_states(cli.ec2, cli.fleet.instance_ids())
        asked: list[tuple[bool, str]] = []
        monkeypatch.setattr(sys, "stdin", Keyboard("y\ny\n", lambda: asked.append(
            (isinstance(sys.stderr, FileProxy), ANSI.sub("", capsys.readouterr().err)))))

        code = run_cli("run", OFFLINE_REPAIR, *cli.rescue_param,
                       "--journal", str(tmp_path / "j.sqlite"))

        assert code == 0, capsys.readouterr().err
        [_, (held, shown)] = asked
        assert not held  # stderr is the terminal again while the question waits
        assert shown.endswith(
            "\ncanary batch done (1 target): 1 succeeded, 0 failed, 0 rolled back, 0 refused; "
            "failure budget: 0 failed, 0 allowed; 1 target to go\n"
            "Go on with the remaining targets? [y/N]: "), shown[-600:]
        for state in before.values():
            assert repair_problems(cli.ec2, state, cli.sandbox.channel_file_present) == []


def rolled_out(tmp_path: Path, batches: str) -> str:
    """ec2-offline-repair with ``batches`` (its scripts beside it)."""
    folder = tmp_path / "playbooks"
    shutil.copytree(Path(OFFLINE_REPAIR).parent, folder)
    playbook = folder / "ec2-offline-repair.yaml"
    text = playbook.read_text(encoding="utf-8")
    assert "  batches: [1, 100%]\n" in text
    playbook.write_text(text.replace("  batches: [1, 100%]\n", f"  batches: {batches}\n"),
                        encoding="utf-8")
    return str(playbook)


def test_after_one_ctrl_c_the_bars_and_every_report_say_what_happened(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    with cli_sandbox(monkeypatch, FleetSpec(plain=4, azs=1)) as cli:
        ids = sorted(cli.fleet.instance_ids())
        before = root_states(cli.ec2, ids)
        ctrl_c_after(monkeypatch, "detach")  # every root volume is off its instance
        reports = tmp_path / "reports"

        code = run_cli("run", rolled_out(tmp_path, "[100%]"), "--yes", "--progress",
                       *cli.rescue_param,
                       "--journal", str(tmp_path / "j.sqlite"),
                       "--report", f"json:{reports / 'run.json'}",
                       "--report", f"junit:{reports / 'run.xml'}",
                       "--report", f"md:{reports / 'run.md'}")

        err = capsys.readouterr().err
        assert code == 130, err
        assert root_states(cli.ec2, ids) == before  # every one put back as it was
        assert rescue_instances(cli.ec2) == []
    run_id = json_file(reports / "run.json")["run_id"]
    # The console: each target once, as rolled back; no step shown done that resume redoes.
    assert err.count("rolled back to where it was; `remediate resume` starts it again") == 4
    assert f"run {run_id} finished: 4 interrupted\n" in err
    assert bar(err, "targets") == ["targets", "0/4"]
    assert status(err) == ("targets: 0 succeeded, 4 interrupted (4 rolled back); in flight 0; "
                           "retries 0; API retries 0 (0 throttled)")
    for step in ("prepare_rescue", "detach", "verify"):
        assert bar(err, step) == [step, "0/4", "failed", "0", "running", "0"]
    # The JSON report counts the same, each target once: interrupted is not failed.
    report = json_file(reports / "run.json")
    assert report["summary"] == {"succeeded": 0, "failed": 0, "rolled_back": 0,
                                 "interrupted": 4, "refused": 0, "skipped": 0, "not_run": 0,
                                 "total": 4, "interrupted_rolled_back": 4}
    assert {t["id"]: (t["status"], t["rolled_back"]) for t in report["targets"]} == dict.fromkeys(
        ids, ("interrupted", True))
    # JUnit: not a failure, not green either: an error each.
    suite = ET.parse(reports / "run.xml").getroot()
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "4", "failures": "0", "errors": "4", "skipped": "0"}
    assert [(c.find("error") is not None, c.find("failure")) for c in suite.iter("testcase")
            ] == [(True, None)] * 4
    # Markdown: the headline says interrupted, not failed; what to do follows.
    markdown = (reports / "run.md").read_text(encoding="utf-8").splitlines()
    assert markdown[2] == "**4 targets: 0 fixed, 4 interrupted (4 rolled back).**"
    assert "### Failed" not in markdown and "### Interrupted (4)" in markdown
    assert ("The run stopped before these were done. **What to do:** `remediate resume JOURNAL` "
            "continues them (a target rolled back to where it was starts again from its first "
            "step).") in markdown


HUMAN_DURATION = re.compile(r"\d+ms|\d(\.\d)?s|\d+s|\d+m(\d\ds)?|\d+h(\d\dm)?")


PAUSE_THEN_REBOOT = """\
version: 1
name: pause-then-reboot
targets:
  kind: ec2-instance
  tags: {incident: crowdstrike-2024-07-19}
steps:
  - id: pause
    action: control.pause
    with: {duration: 311.326ms, reason: let the sensor settle}
  - id: reboot
    action: ec2.reboot
    with: {times: 1}
  - id: verify
    action: ec2.verify_status
"""


@pytest.mark.parametrize("moving", [False, True], ids=["virtual-clock", "moving-clock"])
def test_every_duration_is_said_the_human_way(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        moving: bool) -> None:
    """A step of 0.311326 s read ``0.311326s`` (issue 16). On a clock that moves between
    readings every step takes a little more than planned: still human text."""
    playbook = tmp_path / "pause-then-reboot.yaml"
    playbook.write_text(PAUSE_THEN_REBOOT, encoding="utf-8")
    with cli_sandbox(monkeypatch, FleetSpec(plain=0, reboot_fixable=2, reboots_to_fix=1,
                                            azs=1), clock=moving_clock() if moving else None
                     ) as cli:
        ids = cli.fleet.instance_ids()

        code = run_cli("run", str(playbook), "--yes", "--no-progress",
                       "--journal", str(tmp_path / "j.sqlite"))

        err = capsys.readouterr().err
        assert code == 0, err
        assert all(status_ok(cli.ec2, i) for i in ids)
    durations = re.findall(r" (?:in|after) (\S+?)[,:]?(?: |$)", err, re.MULTILINE)
    assert len(durations) == 6, err  # each target's three steps said how long they took
    assert [d for d in durations if not HUMAN_DURATION.fullmatch(d)] == [], err
    if not moving:
        assert sorted(re.findall(r"pause \(control.pause\) succeeded in (\S+)$", err,
                                 re.MULTILINE)) == ["311ms", "311ms"], err


def test_a_resumed_runs_bars_start_from_the_journal(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    with cli_sandbox(monkeypatch, FleetSpec(plain=3, azs=1)) as cli:
        before = root_states(cli.ec2, cli.fleet.instance_ids())
        journal = str(tmp_path / "j.sqlite")
        ctrl_c_after(monkeypatch, "verify")  # the canary is fixed; the rest never started
        assert run_cli("run", OFFLINE_REPAIR, "--yes", "--no-progress", *cli.rescue_param,
                       "--journal", journal) == 130
        capsys.readouterr()  # (Ctrl-C is pressed once: the resume is not interrupted)

        code = run_cli("resume", journal, "--progress")

        err = capsys.readouterr().err
        assert code == 0, err
        for state in before.values():
            assert repair_problems(cli.ec2, state, cli.sandbox.channel_file_present) == []
    # The canary's steps, done before the resume, count: every bar is 3 of 3, not 2 of 2.
    assert bar(err, "targets") == ["targets", "3/3"]
    assert status(err) == ("targets: 3 succeeded; in flight 0; retries 0; API retries 0 "
                           "(0 throttled)")
    for step in ("prepare_rescue", "repair", "verify"):
        assert bar(err, step) == [step, "3/3", "failed", "0", "running", "0"]


def test_the_markdown_report_fits_a_chat_window_and_says_each_finding_once(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "run.md"
    with cli_sandbox(monkeypatch, FleetSpec(plain=3, stop_protected=2, marketplace=1,
                                            instance_store=1, encrypted_bad_key=1,
                                            azs=2)) as cli:
        # After the canary, SSM refuses the repair: the next target is rolled back, which
        # spends the failure budget (10% of 3), so the last one (one in flight at a time)
        # is skipped.
        when_step_finishes(monkeypatch, "verify", lambda: cli.sandbox.fail(
            "SendCommand", "InvalidDocument", "the document is not valid for this "
            "instance; see the SSM documentation for " + "why " * 40))

        playbook = rolled_out(tmp_path, "[1, 1]")
        code = run_cli("run", playbook, "--yes", "--no-progress", *cli.rescue_param,
                       "--journal", str(tmp_path / "j.sqlite"), "--report", f"md:{report}",
                       "--report", f"json:{tmp_path / 'run.json'}",
                       "--report", f"junit:{tmp_path / 'run.xml'}")

        err = capsys.readouterr().err
        assert code == 2, err
    # The console, the JSON and the JUnit report count alike, each target once.
    summary = json_file(tmp_path / "run.json")["summary"]
    assert summary == {"succeeded": 1, "failed": 0, "rolled_back": 1, "interrupted": 0,
                       "refused": 5, "skipped": 1, "not_run": 0, "total": 8,
                       "interrupted_rolled_back": 0}
    run_id = json_file(tmp_path / "run.json")["run_id"]
    assert err.splitlines()[-1] == (
        f"run {run_id} finished: 1 succeeded, 1 rolled back, 5 refused, 1 skipped")
    suite = ET.parse(tmp_path / "run.xml").getroot()
    # A refused target fails in JUnit as it fails the command (exit 2): no green dashboard.
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "8", "failures": "6", "errors": "0", "skipped": "1"}
    assert sorted(str(f.get("type")) for f in suite.iter("failure")) == [
        "refused"] * 5 + ["rolled_back"]
    lines = report.read_text(encoding="utf-8").splitlines()
    # Headline numbers first, each target once.
    assert lines[:3] == [f"# remediate run: {playbook}", "",
                         "**8 targets: 1 fixed, 1 rolled back, 5 refused, 1 skipped.**"]
    tables = [line for line in lines if line.startswith("|")]
    assert tables and max(len(line) for line in tables) <= CHAT_WIDTH, tables
    # Each finding said once: its meaning and what to do head its group, not every target.
    for kind, severity, hint in (
            ("stop-protection", "block", "turn it off first: aws ec2 "
             "modify-instance-attribute --no-disable-api-stop"),
            ("marketplace-product-code", "block", "use root-volume replacement instead"),
            ("instance-store-data-loss", "ack", "use playbooks/ec2-replace-root-volume.yaml "
             "(keeps instance store), or --accept instance-store-data-loss"),
            ("kms-key-unusable", "block", "enable the key (or cancel its deletion) and grant "
             "the caller and rescue instance kms:Decrypt/CreateGrant")):
        said = [line for line in lines if kind in line]
        assert len(said) == 1 and said[0].startswith(f"**{kind}** ({severity}, "), said
        assert said[0].endswith(f"**What to do:** {hint}")
        assert sum(line.count(hint) for line in lines) == 1
    assert "- **public-ip-will-change** (2 targets): the public IPv4 address changes on " \
           "stop/start (no Elastic IP): " in "\n".join(lines)
    # Every group that needs a human says what to do.
    human = lines[lines.index("## Needs a human (6)"):lines.index("## Worth knowing")]
    assert [line for line in human if line.startswith("### ")] == [
        "### Rolled back (1)", "### Refused (5)"]
    assert "**What to do:** read why, then try the next route" in "\n".join(human)
