from __future__ import annotations

from dataclasses import replace

from remediate.executor.events import Event, TargetFinished, TargetInspected
from remediate.reporters.markdown import MarkdownReport
from remediate.reporters.record import RunRecord


def test_the_dry_run_audit_lists_each_target_and_sums_up(dry_events: list[Event]) -> None:
    record = RunRecord()
    for event in dry_events:
        record(event)
    assert MarkdownReport("unused").render(record) == """\
# remediate dry run: ec2-offline-repair

Run `run-2`, started 2024-07-19T05:30:00Z, finished 2024-07-19T05:30:02Z (2s).

**Nothing was changed.** This is what a run would do.

**2 targets: 1 would be worked on, 1 refused**.

Estimated duration: 12m34s.

## API calls it would make

Counted per target; the executor merges calls that take many ids into one request.

| API call | Mutating | Calls |
|---|---|---|
| `ec2:DescribeInstances` | no | 1 |
| `ec2:StopInstances` | yes | 1 |

## Findings

| Finding | Severity | Targets | What it means | What to do |
|---|---|---|---|---|
| public-ip-will-change | info | 1 | the public IPv4 address changes on stop/start (no Elastic \
IP) |   |
| stop-protection | block | 1 | stop protection (DisableApiStop) blocks the stop | turn it off \
first: aws ec2 modify-instance-attribute --no-disable-api-stop |

## Steps

| Step | Action | Would run | Would skip | Why skipped |
|---|---|---|---|---|
| stop | ec2.stop | 1 | 0 |   |
| start | ec2.start | 0 | 1 | already running (1) |

## Targets

### `i-1` (us-east-1, account default): would be worked on

Facts: state running, instance_type m5.large.

- public-ip-will-change (info): 54.0.0.1 is not an Elastic IP

| Step | Action | Would | API calls |
|---|---|---|---|
| stop | ec2.stop | run | `ec2:StopInstances`, `ec2:DescribeInstances` |
| start | ec2.start | skip: already running |   |

### `i-2` (us-east-1, account default): stop-protection: DisableApiStop is set

Facts: state running.

- stop-protection (block): DisableApiStop is set
"""


def test_an_audit_without_findings_says_so(dry_events: list[Event]) -> None:
    clean = [replace(e, findings=(), refused=None) if isinstance(e, TargetInspected) else e
             for e in dry_events if not isinstance(e, TargetFinished)]
    record = RunRecord()
    for event in clean:
        record(event)
    text = MarkdownReport("unused").render(record)
    assert "**2 targets: 2 would be worked on, 0 refused**." in text
    assert "## Findings\n\nNone: no target has a known risk.\n" in text
