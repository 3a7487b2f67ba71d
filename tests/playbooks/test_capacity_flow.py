"""No capacity left to start the targets again (issue 18), on the sandbox fleet: the AZ
runs out of the targets' type while they are stopped for the offline repair."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from test_builtin_playbooks import instance, rescue_instances, root_mapping, run
from test_offline_repair_flow import calls_for

from remediate.clock import Clock, ScaledClock, VirtualClock
from remediate.plans.retry import failed_targets
from remediate.sandbox import Durations, Fleet, FleetSpec, Sandbox

PLAYBOOK = "ec2-offline-repair.yaml"
NO_M5 = ("InsufficientInstanceCapacity: We currently do not have sufficient m5.large "
         "capacity in the Availability Zone you requested (us-east-1a). Our system will be "
         "working on provisioning additional capacity. You can currently get m5.large "
         "capacity by not specifying an Availability Zone in your request or choosing other "
         "Availability Zones.")
FAST = Durations(instance_start=2.0, instance_stop=2.0, instance_stop_skip_os=0.5,
                 instance_boot=2.0, reboot=2.0, volume_attach=0.5, volume_detach=0.5,
                 snapshot=30.0, ssm_command=1.0)


CLOCKS = pytest.mark.parametrize("clock", [VirtualClock(), ScaledClock(100.0)],
                                 ids=["virtual", "moving"])


@contextmanager
def no_m5_left(clock: Clock) -> Iterator[tuple[Sandbox, Fleet]]:
    """Two targets in an AZ whose every m5.large is taken (the rescue instances are
    another type): a stop gives its capacity back, and others take it at once."""
    with Sandbox(clock=clock, durations=FAST) as sandbox:
        fleet = sandbox.build_fleet(FleetSpec(plain=2, azs=1))
        sandbox.set_capacity("m5.large", "us-east-1a", 0)
        yield sandbox, fleet


@CLOCKS
def test_offline_repair_when_the_az_runs_out_before_the_restart(
        tmp_path: Path, clock: Clock) -> None:
    with no_m5_left(clock) as (sandbox, fleet):
        report_path = tmp_path / "run.json"

        # Without holding capacity before the stop (see the tests below for with).
        code = run(sandbox, PLAYBOOK, tmp_path, reports=(f"json:{report_path}",),
                   params={"rescue_instance_type": "m5.xlarge", "hold_capacity": "false"})

        assert code == 2
        report: dict[str, Any] = json.loads(report_path.read_text())
        outcome = {t["id"]: t for t in report["targets"]}
        # The canary fails; it spends the failure budget, so the other is not started.
        canary, other = sorted(fleet.targets,
                               key=lambda t: outcome[t.instance_id]["status"] != "failed")
        failed = outcome[canary.instance_id]
        iid = canary.instance_id
        # One clear outcome: the restart's 4 attempts, and the rollback puts the settings
        # back without spending a second budget on the start.
        assert failed["status"] == "failed"
        assert failed["error"] == (
            f"step restore failed: no capacity to start {iid}: 4 attempts over 3m30s were "
            f"refused ({NO_M5}). It is stopped, with its root volume attached: start it again "
            f"in a few minutes (aws ec2 start-instances --instance-ids {iid}, or run again "
            "with --retry-failed), or change its instance type while it is stopped; it "
            "cannot move to another Availability Zone, its volumes are in this one.; "
            f"rollback step put_back_settings failed: {iid} not started again: no capacity, "
            "as above")
        assert len(calls_for(sandbox, "StartInstances", iid)) == 4
        assert [(s["id"], s["status"]) for s in failed["steps"] if s["rollback"]] == [
            ("put_back", "succeeded"), ("put_back_settings", "failed")]
        # The repaired root volume is home, the instance stopped, nothing left behind.
        mapping = root_mapping(sandbox, canary.instance_id)
        assert mapping["Ebs"]["VolumeId"] == canary.root_volume_id
        assert not sandbox.channel_file_present(canary.root_volume_id)
        assert instance(sandbox, canary.instance_id)["State"]["Name"] == "stopped"
        assert rescue_instances(sandbox) == []
        # The other target was never touched.
        assert outcome[other.instance_id]["status"] == "skipped"
        assert instance(sandbox, other.instance_id)["State"]["Name"] == "running"
        assert calls_for(sandbox, "StopInstances", other.instance_id) == []


def test_a_20_target_offline_repair_holds_and_releases_one_reservation_per_target(
        tmp_path: Path) -> None:
    # The figure of issue 18's closing note: reservations created and released per run.
    with Sandbox(clock=VirtualClock(), durations=FAST) as sandbox:
        fleet = sandbox.build_fleet(FleetSpec(plain=20, azs=2))

        code = run(sandbox, PLAYBOOK, tmp_path, params={"rescue_instance_type": "m5.xlarge"})

        assert code == 0
        assert all(instance(sandbox, t.instance_id)["State"]["Name"] == "running"
                   for t in fleet.targets)
        reservations = sandbox.client("ec2").describe_capacity_reservations()
        assert Counter(r["State"] for r in reservations["CapacityReservations"]) == Counter(
            {"cancelled": 20})
        assert sandbox.capacity_reservations_created == 20
        # Each opened for its target's start and cancelled by it: the run's end found
        # nothing left to release.
        for operation in ("CreateCapacityReservation", "ModifyCapacityReservation",
                          "CancelCapacityReservation"):
            assert sum(1 for c in sandbox.api_calls if c.operation == operation
                       and not c.throttled) == 20, operation


@CLOCKS
def test_offline_repair_leaves_a_target_whose_capacity_cannot_be_held_untouched(
        tmp_path: Path, clock: Clock) -> None:
    with no_m5_left(clock) as (sandbox, fleet):
        report_path, markdown = tmp_path / "run.json", tmp_path / "run.md"

        code = run(sandbox, PLAYBOOK, tmp_path,
                   reports=(f"json:{report_path}", f"md:{markdown}",
                            f"html:{tmp_path / 'run.html'}"),
                   params={"rescue_instance_type": "m5.xlarge"})

        assert code == 2
        report: dict[str, Any] = json.loads(report_path.read_text())
        assert report["summary"]["refused"] == 2
        assert {k: v for k, v in report["summary"].items()
                if v and k not in ("total", "refused")} == {}
        for target in fleet.targets:
            iid = target.instance_id
            outcome = next(t for t in report["targets"] if t["id"] == iid)
            why = (f"step stop refused: could not hold capacity for {iid} (m5.large, "
                   "Windows, us-east-1a), so it was not stopped and is as it was: run again "
                   "later, or set hold_capacity: false to stop it without a reservation (it "
                   "may then not start again while the AZ has no capacity). AWS said: "
                   + NO_M5)
            assert (outcome["status"], outcome["error"], outcome["refused"]) == (
                "refused", why, why)
            assert outcome["rolled_back"] is False
            # The backup was taken (and kept); nothing else ran, no rollback step.
            assert [(s["id"], s["status"]) for s in outcome["steps"]] == [
                ("prepare_rescue", "succeeded"), ("backup", "succeeded"),
                ("stop", "failed")]
            assert f"could not hold capacity for {iid} (m5.large" in markdown.read_text()
            # As it was: running on its own root volume, never stopped.
            assert instance(sandbox, iid)["State"]["Name"] == "running"
            assert root_mapping(sandbox, iid)["Ebs"]["VolumeId"] == target.root_volume_id
            assert calls_for(sandbox, "StopInstances", iid) == []
        assert rescue_instances(sandbox) == []
        assert sandbox.capacity_reservations_created == 0
        assert "### Refused (2)" in markdown.read_text()
        # `run --retry-failed` takes them up again, from the report or the journal.
        assert failed_targets(str(report_path), "").ids == tuple(
            sorted(fleet.instance_ids()))
        assert failed_targets(str(tmp_path / "j.sqlite"), "").ids == tuple(
            sorted(fleet.instance_ids()))
