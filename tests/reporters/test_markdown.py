from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from remediate.actions.contract import Target
from remediate.executor.events import (
    ApiRetrying,
    Event,
    RunFinished,
    RunStarted,
    StepFinished,
    StepRetrying,
    StepStarted,
    TargetFinished,
    TargetInspected,
)
from remediate.findings import Finding
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

**5 targets: 1 fixed, 1 failed, 1 rolled back, 1 refused, 1 skipped.**

Run `run-1`, started 2024-07-19T05:30:00Z, finished 2024-07-19T05:46:40Z (16m40s).

- Retries: 1 step retry, 2 API call retries (1 throttled).
- warning: rescue pool in us-east-1a used 2 instances

## Needs a human (3)

### Failed (1)

The fix failed; the target is as the failed step left it. **What to do:** read the error, fix \
its cause, then run the playbook again on these targets (`--target-ids`).

- `i-bad` (us-east-1, default): stop (ec2.stop): failed after 2 attempts in 19s: \
IncorrectInstanceState: not stoppable now

### Rolled back (1)

The fix failed and the target was put back as it was, so it is still broken. **What to do:** \
read why, then try the next route (e.g. `playbooks/ec2-replace-root-volume.yaml`) on these \
targets.

- `i-rb` (eu-west-1, default): rolled back: step start failed

### Refused (1)

Not touched, or stopped before the step named.

**stop-protection** (block, 1 target): stop protection (DisableApiStop) blocks the stop. \
**What to do:** turn it off first: aws ec2 modify-instance-attribute --no-disable-api-stop

- `i-ref` (us-east-1, default): DisableApiStop is set

## Worth knowing

- **public-ip-will-change** (1 target): the public IPv4 address changes on stop/start (no \
Elastic IP): `i-bad`

## Fixed (1)

| Account/Region | Fixed | Median time | Slowest |
|---|---|---|---|
| default/us-east-1 | 1 | 3m | 3m (`i-ok`) |

## Skipped (1)

- already healthy (1): `i-skip`
"""


def test_a_failed_rollback_is_called_out(events: list[Event]) -> None:
    broken = [replace(e, status="failed", error="VolumeInUse: vol-1 is attached elsewhere")
              if isinstance(e, StepFinished) and e.rollback else e for e in events]
    assert ("- `i-rb` (eu-west-1, default): rolled back: step start failed; rollback "
            "incomplete: rollback reattach (ec2.attach-volume): failed in 30s: VolumeInUse: "
            "vol-1 is attached elsewhere\n") in render(broken)


def test_nothing_needs_a_human_when_all_went_well(events: list[Event]) -> None:
    only_ok = [e for e in events if getattr(e, "target", None) in (None, OK)
               and not isinstance(e, ApiRetrying | StepRetrying)]
    start = only_ok[0]
    assert isinstance(start, RunStarted)
    only_ok[0] = replace(start, targets=(OK,))
    text = render(only_ok)
    assert text.splitlines()[2] == "**1 target: 1 fixed.**"
    assert "## Needs a human\n\nNothing: every target was fixed or skipped as planned.\n" in text
    assert "Retries" not in text


def test_pipes_and_newlines_cannot_break_a_table() -> None:
    assert cell("a|b\nc") == "a\\|b c"
    assert cell("") == " "
    assert table(["A"], [["x|y"]]) == ["| A |", "|---|", "| x\\|y |", ""]


def test_at_fleet_size_targets_that_ended_alike_are_one_line() -> None:
    """Thousands of targets failing at one step, or refused for one finding, are a line
    each in a chat channel no more: how many, a few ids and one example."""
    stuck = [Target("ec2-instance", f"i-{n:017x}", "us-east-1") for n in range(1, 13)]
    odd = Target("ec2-instance", "i-0dd", "us-east-1")
    guarded = [Target("ec2-instance", f"i-{n:017x}", "us-east-1") for n in range(100, 108)]
    t0 = datetime(2024, 7, 19, 5, 30, tzinfo=UTC)

    def at(seconds: float) -> datetime:
        return t0 + timedelta(seconds=seconds)

    events: list[Event] = [RunStarted("run-9", "ec2-offline-repair", False, at(0),
                                      (*stuck, odd, *guarded), ("stop", "start"))]
    for target in guarded:
        why = f"blocked by stop-protection: {target.id} has DisableApiStop set"
        events += [TargetInspected(target, {"state": "running"}, (Finding(
            "stop-protection", f"{target.id} has DisableApiStop set"),), refused=why),
            TargetFinished(target, "refused", why)]
    for target, error in [*((t, f"IncorrectInstanceState: {t.id} is not stoppable")
                            for t in stuck), (odd, "timed out after 10m")]:
        events += [StepStarted(target, "stop", "ec2.stop", 1, at(1)),
                   StepFinished(target, "stop", "ec2.stop", "failed", 1, at(1), at(20), error),
                   TargetFinished(target, "failed", f"step stop failed: {error}")]
    events.append(RunFinished("run-9", at(60), {}))

    text = render(events)

    ids = ", ".join(f"`{t.id}`" for t in stuck[:10])
    assert (f"- **stop (ec2.stop): IncorrectInstanceState**, 12 targets: {ids} and 2 more; "
            f"for example `{stuck[0].id}` (us-east-1, default): stop (ec2.stop): failed in 19s: "
            f"IncorrectInstanceState: {stuck[0].id} is not stoppable\n"
            "- `i-0dd` (us-east-1, default): stop (ec2.stop): failed in 19s: timed out after "
            "10m\n") in text
    refused = ", ".join(f"`{t.id}`" for t in guarded)
    assert (f"- 8 targets: {refused}; for example `{guarded[0].id}` (us-east-1, default): "
            f"{guarded[0].id} has DisableApiStop set\n") in text
    assert text.count("stop-protection") == 1
    assert len(text.splitlines()) < 30
