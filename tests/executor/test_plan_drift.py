"""A run from an approved plan (``approved``: the facts it pinned) refuses a target that
moved since, also when ``resume`` is the one that first inspects it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from executor_support import REGION, fixed, root_in_place, swap_playbook

from remediate.actions.contract import Target
from remediate.clock import VirtualClock
from remediate.executor.engine import Executor
from remediate.executor.events import Event, EventBus, TargetInspected
from remediate.executor.resume import resume
from remediate.journal import Journal
from remediate.sandbox import FleetSpec, Sandbox


class Crash(BaseException):
    """The process dies (as if killed) in the middle of the scheduler's work."""


def test_resume_of_a_planned_run_refuses_a_target_that_moved_before_it_was_inspected(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, tmp_path: Path) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=2, azs=1))
    moved, kept = sorted(fleet.targets, key=lambda t: t.instance_id)
    targets = [Target("ec2-instance", t.instance_id, t.region) for t in (moved, kept)]
    approved = {target.key: {"state": "running", "root_volume_id": t.root_volume_id}
                for target, t in zip(targets, (moved, kept), strict=True)}
    pb = swap_playbook(fleet.regions[REGION].rescue_windows_ami)
    journal = tmp_path / "run.journal"

    def die_on_inspecting_moved(event: Event) -> None:
        if isinstance(event, TargetInspected) and event.target.id == moved.instance_id:
            raise Crash("killed while inspecting")

    bus = EventBus()
    bus.subscribe(die_on_inspecting_moved)
    with pytest.raises(Crash):
        Executor(pb, targets, clients=clients, clock=clock, bus=bus, journal=Journal(journal),
                 run_id="run-p", approved=approved).run()
    assert Journal(journal).targets("run-p")[targets[0].key].facts is None
    # Between the crash and the resume, someone stops it.
    ec2 = sandbox.client("ec2", REGION)
    ec2.stop_instances(InstanceIds=[moved.instance_id])
    clock.advance(900)

    result = resume(journal, pb, clients=clients, clock=clock, bus=EventBus())

    assert result.statuses == {targets[0].key: "refused", targets[1].key: "succeeded"}
    assert result.errors[targets[0].key] == (
        f"changed since the plan was approved: {moved.instance_id}: state running -> stopped "
        "(plan again to approve it as it is now)")
    assert fixed(sandbox, kept)
    described = ec2.describe_instances(InstanceIds=[moved.instance_id])
    assert described["Reservations"][0]["Instances"][0]["State"]["Name"] == "stopped"
    ec2.start_instances(InstanceIds=[moved.instance_id])
    clock.advance(900)
    assert root_in_place(sandbox, moved)  # its root volume never left it
    assert sandbox.channel_file_present(moved.root_volume_id)
