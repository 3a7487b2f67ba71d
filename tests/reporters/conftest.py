"""Synthetic event sequences: a real run with every outcome, and a dry run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from remediate.actions.contract import Target
from remediate.executor.events import (
    ApiRetrying,
    BatchFinished,
    BatchStarted,
    Event,
    Notice,
    RollbackStarted,
    RunFinished,
    RunStarted,
    StepFinished,
    StepPlanned,
    StepRetrying,
    StepStarted,
    StepStatus,
    TargetFinished,
    TargetInspected,
    TargetStarted,
)
from remediate.findings import Finding

T0 = datetime(2024, 7, 19, 5, 30, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ec2(instance_id: str, region: str = "us-east-1") -> Target:
    return Target("ec2-instance", instance_id, region)


OK, BAD, RB, REF, SKIP = ec2("i-ok"), ec2("i-bad"), ec2("i-rb", "eu-west-1"), ec2("i-ref"), ec2(
    "i-skip")


@dataclass(frozen=True)
class FromTheFuture(Event):
    """An event type this reporter version does not know."""

    payload: str = "x"


def _step(target: Target, step: str, action: str, start: float, end: float,
          status: StepStatus = "succeeded", error: str | None = None,
          rollback: bool = False) -> list[Event]:
    return [
        StepStarted(target, step, action, 1, at(start)),
        StepFinished(target, step, action, status, 1, at(start), at(end), error,
                     rollback=rollback),
    ]


def run_events() -> list[Event]:
    return [
        RunStarted("run-1", "ec2-offline-repair", False, at(0), (OK, BAD, RB, REF, SKIP),
                   ("stop", "start")),
        TargetInspected(OK, {"state": "running", "status": "impaired", "tags": {"Team": "web"}},
                        ()),
        TargetInspected(BAD, {"state": "running"},
                        (Finding("public-ip-will-change", "54.0.0.1 is not an Elastic IP"),)),
        TargetInspected(RB, {"state": "running"}, ()),
        TargetInspected(REF, {"state": "running"},
                        (Finding("stop-protection", "DisableApiStop is set"),),
                        refused="stop-protection: DisableApiStop is set"),
        TargetInspected(SKIP, {"state": "running", "status": "ok"},
                        (Finding("already-healthy", "status checks pass"),)),
        BatchStarted(0, (OK, BAD, RB, SKIP), 1),
        TargetStarted(OK),
        *_step(OK, "stop", "ec2.stop", 1, 61),
        *_step(OK, "start", "ec2.start", 61, 181),
        TargetFinished(OK, "succeeded"),
        TargetStarted(BAD),
        StepStarted(BAD, "stop", "ec2.stop", 1, at(1)),
        StepRetrying(BAD, "stop", 1, 5.0, "IncorrectInstanceState: not stoppable now"),
        ApiRetrying("ec2.StopInstances", "RequestLimitExceeded", 1, 0.5, ("i-bad",)),
        ApiRetrying("ec2.DescribeInstances", "InternalError", 1, 0.25),
        StepStarted(BAD, "stop", "ec2.stop", 2, at(6)),
        StepFinished(BAD, "stop", "ec2.stop", "failed", 2, at(1), at(20),
                     "IncorrectInstanceState: not stoppable now"),
        TargetFinished(BAD, "failed", "step stop failed"),
        TargetStarted(RB),
        *_step(RB, "stop", "ec2.stop", 2, 62),
        *_step(RB, "start", "ec2.start", 62, 962, "failed",
               error="timed out after 900s waiting for instance i-rb running"),
        RollbackStarted(RB, "step start failed"),
        *_step(RB, "reattach", "ec2.attach-volume", 962, 992, rollback=True),
        TargetFinished(RB, "rolled_back", "step start failed"),
        TargetStarted(SKIP),
        StepFinished(SKIP, "stop", "ec2.stop", "skipped", 0, at(3), at(3)),
        TargetFinished(SKIP, "skipped", "already healthy"),
        TargetFinished(REF, "refused", "stop-protection: DisableApiStop is set"),
        Notice("warning", "rescue pool in us-east-1a used 2 instances"),
        FromTheFuture(),
        BatchFinished(0, 1, 1, 1, rolled_back=1, others=(("skipped", 1),)),
        RunFinished("run-1", at(1000), {"succeeded": 1, "failed": 1, "rolled_back": 1,
                                        "skipped": 1, "refused": 1}),
    ]


def dry_run_events() -> list[Event]:
    ok, ref = ec2("i-1"), ec2("i-2")
    return [
        RunStarted("run-2", "ec2-offline-repair", True, at(0), (ok, ref), ("stop", "start")),
        TargetInspected(ok, {"state": "running", "instance_type": "m5.large"},
                        (Finding("public-ip-will-change", "54.0.0.1 is not an Elastic IP"),)),
        TargetInspected(ref, {"state": "running"},
                        (Finding("stop-protection", "DisableApiStop is set"),),
                        refused="stop-protection: DisableApiStop is set"),
        TargetFinished(ref, "refused", "stop-protection: DisableApiStop is set"),
        StepPlanned(ok, "stop", "ec2.stop", ("ec2:StopInstances", "ec2:DescribeInstances"), None,
                    True),
        StepPlanned(ok, "start", "ec2.start", ("ec2:StartInstances",), "already running", True),
        RunFinished("run-2", at(2), {}, estimate_seconds=754.0),
    ]


@pytest.fixture
def events() -> list[Event]:
    return run_events()


@pytest.fixture
def dry_events() -> list[Event]:
    return dry_run_events()
