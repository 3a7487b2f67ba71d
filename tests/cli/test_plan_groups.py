"""The dry-run audit's groups: who reads first, and what makes two targets one group."""

from __future__ import annotations

from remediate.actions.contract import Target
from remediate.cli.plan_groups import group_lines, groups
from remediate.findings import Finding
from remediate.reporters.record import PlannedStep, TargetRecord

STOP = PlannedStep("stop", "ec2.stop", ("ec2:StopInstances",), None, True)
REBOOT = PlannedStep("reboot", "ec2.reboot", ("ec2:RebootInstances",), None, True)


def record(iid: str, status: str = "planned", *, refused: str | None = None,
           findings: tuple[str, ...] = (), planned: tuple[PlannedStep, ...] = (STOP,),
           volume: str | None = None) -> TargetRecord:
    return TargetRecord(Target("ec2-instance", iid, "us-east-1"), status,
                        tuple(Finding(kind, "detail") for kind in findings),
                        {"root_volume_id": volume} if volume else {}, refused,
                        planned=list(planned) if status == "planned" else [])


def test_refused_first_then_what_needs_a_look_then_the_largest() -> None:
    records = [
        record("i-1"), record("i-2"), record("i-3", planned=(REBOOT,)), record("i-4"),
        record("i-5", findings=("instance-store-data-loss",)),
        record("i-6", "failed", refused="inspection failed: InvalidInstanceID.NotFound"),
        record("i-7", "refused", volume="vol-7",
               refused="blocked by stop-protection: i-7 (root vol-7) has DisableApiStop"),
        record("i-8", "refused", volume="vol-8",
               refused="blocked by stop-protection: i-8 (root vol-8) has DisableApiStop"),
    ]

    lines = group_lines(groups(records))

    assert lines == [
        "[1] 2 targets refused: i-7, i-8",
        "      blocked by stop-protection: <id> (root <id>) has DisableApiStop",
        "[2] 1 target needs a human: i-6",
        "      inspection failed: InvalidInstanceID.NotFound",
        "[3] 1 target would be worked on, needs a human look (findings: "
        "instance-store-data-loss): i-5",
        "      stop (ec2.stop): ec2:StopInstances",
        "[4] 3 targets would be worked on: i-1, i-2, i-4",
        "      steps as in [3]",
        "[5] 1 target would be worked on: i-3",
        "      reboot (ec2.reboot): ec2:RebootInstances",
    ]


def test_a_large_group_shows_three_ids_and_where_the_rest_are() -> None:
    [line, _] = group_lines(groups([record(f"i-{n}") for n in range(10)]))

    assert line == ("[1] 10 targets would be worked on: i-0, i-1, i-2, and 7 more "
                    "(--format json lists all)")
