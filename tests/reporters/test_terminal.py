from __future__ import annotations

import io

import pytest
from rich.console import Console

from remediate.executor.events import Event
from remediate.reporters.terminal import TerminalReporter

PLAIN = """\
run run-1: ec2-offline-repair, 5 targets, 2 steps
i-ok (us-east-1): inspected
i-bad (us-east-1): inspected; findings: public-ip-will-change
i-rb (eu-west-1): inspected
i-ref (us-east-1): inspected; findings: stop-protection
i-skip (us-east-1): inspected; findings: already-healthy
batch 1/1: 4 targets
i-ok (us-east-1): started
i-ok (us-east-1): stop (ec2.stop) started
i-ok (us-east-1): stop (ec2.stop) succeeded in 1m
i-ok (us-east-1): start (ec2.start) started
i-ok (us-east-1): start (ec2.start) succeeded in 2m
i-ok (us-east-1): succeeded
i-bad (us-east-1): started
i-bad (us-east-1): stop (ec2.stop) started
i-bad (us-east-1): stop attempt 1 failed: IncorrectInstanceState: not stoppable now; retrying \
in 5s
ec2.StopInstances for 1 target: RequestLimitExceeded, retry 1 in 500ms
ec2.DescribeInstances: InternalError, retry 1 in 250ms
i-bad (us-east-1): stop (ec2.stop) started (attempt 2)
i-bad (us-east-1): stop (ec2.stop) failed in 19s, 2 attempts: IncorrectInstanceState: not \
stoppable now
i-bad (us-east-1): failed: step stop failed
i-rb (eu-west-1): started
i-rb (eu-west-1): stop (ec2.stop) started
i-rb (eu-west-1): stop (ec2.stop) succeeded in 1m
i-rb (eu-west-1): start (ec2.start) started
i-rb (eu-west-1): start (ec2.start) failed in 15m: timed out after 900s waiting for instance \
i-rb running
i-rb (eu-west-1): rolling back: step start failed
i-rb (eu-west-1): reattach (ec2.attach-volume) started
i-rb (eu-west-1): rollback step reattach (ec2.attach-volume) succeeded in 30s
i-rb (eu-west-1): rolled back: step start failed
i-skip (us-east-1): started
i-skip (us-east-1): stop (ec2.stop) skipped in 0s
i-skip (us-east-1): skipped: already healthy
i-ref (us-east-1): refused: stop-protection: DisableApiStop is set
warning: rescue pool in us-east-1a used 2 instances
batch 1/1 done: 1 succeeded, 1 failed, 1 rolled back, 1 skipped
run run-1 finished: 1 succeeded, 1 failed, 1 rolled back, 1 refused, 1 skipped
"""


def test_plain_mode_is_one_unwrapped_line_per_event(events: list[Event]) -> None:
    out = io.StringIO()
    reporter = TerminalReporter(Console(file=out, width=40))  # a narrow, non-TTY console
    for event in events:
        reporter(event)
    assert not reporter.live
    assert out.getvalue() == PLAIN
    assert reporter.failures == 0


def test_dry_run_lines(dry_events: list[Event]) -> None:
    out = io.StringIO()
    reporter = TerminalReporter(out)
    for event in dry_events:
        reporter(event)
    assert out.getvalue().splitlines() == [
        "run run-2: ec2-offline-repair, 2 targets, 2 steps (dry run: nothing will change)",
        "i-1 (us-east-1): inspected; findings: public-ip-will-change",
        "i-2 (us-east-1): inspected; findings: stop-protection",
        "i-2 (us-east-1): refused: stop-protection: DisableApiStop is set",
        "i-1 (us-east-1): stop (ec2.stop) would call ec2:StopInstances, ec2:DescribeInstances",
        "i-1 (us-east-1): start (ec2.start) would skip: already running",
        "run run-2 finished: no targets; estimated duration 12m34s",
    ]


def test_progress_mode_counts_per_step_and_prints_only_what_matters(
        events: list[Event]) -> None:
    out = io.StringIO()
    reporter = TerminalReporter(Console(file=out, width=120), progress=True)
    for event in events:
        reporter(event)
    assert reporter.counts == {"succeeded": 1, "failed": 1, "rolled_back": 1, "refused": 1,
                               "skipped": 1, "interrupted": 0, "not_run": 0, "total": 5,
                               "interrupted_rolled_back": 0, "retries": 1, "api_retries": 2,
                               "throttled": 1}
    text = out.getvalue()
    lines = text.splitlines()
    assert "i-ok (us-east-1): stop (ec2.stop) started" not in text
    assert "i-bad (us-east-1): failed: step stop failed" in lines
    # A refusal is printed once (when the target finishes), not also when inspected.
    assert lines.count("i-ref (us-east-1): refused: stop-protection: DisableApiStop is set") == 1
    assert "warning: rescue pool in us-east-1a used 2 instances" in lines
    # The final render: the status line, then per bar its name, the bar, M/N, fields, ETA.
    assert lines[-4] == ("targets: 1 succeeded, 1 failed, 1 rolled back, 1 refused, 1 skipped; "
                         "in flight 0; retries 1; API retries 2 (1 throttled)")
    bars = [line.split() for line in lines[-3:]]
    assert [bars[0][0], *bars[0][2:-1]] == ["targets", "5/5"]
    # A step's total leaves out the targets that never reach it (refused, failed earlier).
    assert [bars[1][0], bars[1][2], *bars[1][3:-1]] == ["stop", "4/4", "failed", "1",
                                                        "running", "0"]
    assert [bars[2][0], bars[2][2], *bars[2][3:-1]] == ["start", "2/2", "failed", "1",
                                                        "running", "0"]


def test_standard_output_stays_clean_by_default(events: list[Event],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    reporter = TerminalReporter(progress=False)
    for event in events:
        reporter(event)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "run run-1 finished" in captured.err


def test_a_tty_gets_progress_unless_told_otherwise() -> None:
    tty = Console(file=io.StringIO(), force_terminal=True)
    assert TerminalReporter(tty).live
    assert not TerminalReporter(tty, progress=False).live


def test_the_bars_keep_their_counts_in_an_80_column_terminal(events: list[Event]) -> None:
    """The run's status is a line of its own above the bars, which wraps; it once shared
    the targets row, and rich cut every row down to an ellipsis in 80 columns."""
    out = io.StringIO()
    reporter = TerminalReporter(Console(file=out, width=80), progress=True)
    for event in events:
        reporter(event)
    lines = out.getvalue().splitlines()
    assert lines[-5:-3] == [
        "targets: 1 succeeded, 1 failed, 1 rolled back, 1 refused, 1 skipped; in flight ",
        "0; retries 1; API retries 2 (1 throttled)"]
    assert [row.split()[2:-1] for row in lines[-3:]] == [
        ["5/5"], ["4/4", "failed", "1", "running", "0"], ["2/2", "failed", "1", "running", "0"]]
    assert all("…" not in row and len(row) <= 80 for row in lines[-3:])
