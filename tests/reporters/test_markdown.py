from __future__ import annotations

from dataclasses import replace

from remediate.actions.contract import Target
from remediate.executor.events import (
    ApiRetrying,
    Event,
    RunStarted,
    StepFinished,
    StepRetrying,
)
from remediate.reporters.markdown import MarkdownReport
from remediate.reporters.markdown_blocks import cell, table
from remediate.reporters.record import RunRecord

OK = Target("ec2-instance", "i-ok", "us-east-1")


def render(events: list[Event]) -> str:
    record = RunRecord()
    for event in events:
        record(event)
    return MarkdownReport("unused").render(record)


def test_the_run_summary_says_what_was_fixed_failed_and_needs_a_human(
        events: list[Event]) -> None:
    assert render(events) == """\
# remediate run: ec2-offline-repair

Run `run-1`, started 2024-07-19T05:30:00Z, finished 2024-07-19T05:46:40Z (16m40s).

**5 targets: 1 fixed, 1 failed, 1 rolled back, 2 skipped** (1 refused, 0 interrupted, 0 not \
started).

- Retries: 1 step retry, 2 API call retries (1 throttled).
- warning: rescue pool in us-east-1a used 2 instances

## Needs a human

### Failed (1)

The fix failed; the target is as the failed step left it.

| Target | Region | Account | What happened |
|---|---|---|---|
| `i-bad` | us-east-1 | default | stop (ec2.stop): failed after 2 attempts in 19s: \
IncorrectInstanceState: not stoppable now |

### Rolled back (1)

The fix failed and the target was put back as it was (so it is still broken).

| Target | Region | Account | What happened |
|---|---|---|---|
| `i-rb` | eu-west-1 | default | rolled back: step start failed |

### Refused (1)

A finding blocks the playbook, or needs `--accept`: not touched, or stopped before the step named.

| Target | Region | Account | What happened | Findings | What to do |
|---|---|---|---|---|---|
| `i-ref` | us-east-1 | default | stop-protection: DisableApiStop is set | stop-protection: \
DisableApiStop is set | turn it off first: aws ec2 modify-instance-attribute --no-disable-api-stop |

## Fixed (1)

| Target | Region | Account | Steps | Took |
|---|---|---|---|---|
| `i-ok` | us-east-1 | default | 2 | 3m |

## Skipped (1)

| Target | Region | Account | Why |
|---|---|---|---|
| `i-skip` | us-east-1 | default | already healthy |
"""


def test_a_failed_rollback_is_called_out(events: list[Event]) -> None:
    broken = [replace(e, status="failed", error="VolumeInUse: vol-1 is attached elsewhere")
              if isinstance(e, StepFinished) and e.rollback else e for e in events]
    assert ("| `i-rb` | eu-west-1 | default | rolled back: step start failed; rollback "
            "incomplete: rollback reattach (ec2.attach-volume): failed in 30s: VolumeInUse: "
            "vol-1 is attached elsewhere |") in render(broken)


def test_nothing_needs_a_human_when_all_went_well(events: list[Event]) -> None:
    only_ok = [e for e in events if getattr(e, "target", None) in (None, OK)
               and not isinstance(e, ApiRetrying | StepRetrying)]
    start = only_ok[0]
    assert isinstance(start, RunStarted)
    only_ok[0] = replace(start, targets=(OK,))
    text = render(only_ok)
    assert "**1 target: 1 fixed, 0 failed, 0 rolled back, 0 skipped**" in text
    assert "## Needs a human\n\nNothing: every target was fixed or skipped as planned.\n" in text
    assert "Retries" not in text


def test_pipes_and_newlines_cannot_break_a_table() -> None:
    assert cell("a|b\nc") == "a\\|b c"
    assert cell("") == " "
    assert table(["A"], [["x|y"]]) == ["| A |", "|---|", "| x\\|y |", ""]
