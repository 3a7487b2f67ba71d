"""Every built-in EC2 playbook, through `run`'s own code path, while AWS loses replies.

``Sandbox.lose_replies("*", P, seed=...)``: each mutating call takes effect and then,
with probability P, answers 500 InternalError. Listings lag 20 s behind creates
(eventual consistency). P and the seeds were chosen so every mutating operation of
each playbook loses its reply at least twice (each operation draws from its own seeded
stream, so the counts do not depend on how concurrent calls interleave). Asserted in
AWS (the sandbox): no target failed, each is healthy with its root volume at its
original device and DeleteOnTermination as before, one backup snapshot per target, no
rescue instance left, no volume left detached.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_builtin_playbooks import healthy, rescue_instances, root_mapping, run

from remediate.clock import VirtualClock
from remediate.sandbox import Durations, Fleet, FleetSpec, Sandbox

LOSS = 0.7
SEEDS = {"ec2-offline-repair.yaml": 2, "ec2-reboot-first.yaml": 1,
         "ec2-replace-root-volume.yaml": 1}


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(clock=VirtualClock(), durations=Durations(listing_lag=20.0)) as sb:
        yield sb


def run_losing_replies(sandbox: Sandbox, fleet: Fleet, playbook: str, tmp_path: Path,
                       **kwargs: Any) -> dict[str, Any]:
    """Run ``playbook`` on ``fleet`` with replies lost; its JSON report."""
    before = {t.instance_id: root_mapping(sandbox, t.instance_id) for t in fleet.targets}
    report = tmp_path / "run.json"
    sandbox.lose_replies("*", LOSS, seed=SEEDS[playbook])

    code = run(sandbox, playbook, tmp_path, reports=(f"json:{report}",), **kwargs)

    sandbox.clear_faults()
    found: dict[str, Any] = json.loads(report.read_text())
    assert code == 0, [(t["id"], t["status"], t["error"]) for t in found["targets"]]
    assert {t["status"] for t in found["targets"]} == {"succeeded"}
    for target in fleet.targets:
        now = root_mapping(sandbox, target.instance_id)
        assert healthy(sandbox, target.instance_id)
        assert now["DeviceName"] == target.root_device_name
        assert now["Ebs"]["DeleteOnTermination"] == \
            before[target.instance_id]["Ebs"]["DeleteOnTermination"]
    assert rescue_instances(sandbox) == []
    # Every mutating operation of the playbook lost its reply several times (the claim
    # tags, remediate.claims, lose theirs too, but less often: they are few).
    steps = [c for c in sandbox.api_calls if "remediate:claim" not in str(c.request)]
    lost = Counter(c.operation for c in steps if c.reply_lost)
    made = {c.operation for c in steps if c.mutating}
    assert made and min(lost[operation] for operation in made) >= 2, lost
    assert any(c.reply_lost for c in sandbox.api_calls if c not in steps)
    return found


def backups(sandbox: Sandbox, volume_id: str) -> int:
    return len(sandbox.client("ec2").describe_snapshots(OwnerIds=["self"], Filters=[
        {"Name": "volume-id", "Values": [volume_id]},
        {"Name": "tag:remediate:purpose", "Values": ["backup"]}])["Snapshots"])


def detached_volumes(sandbox: Sandbox) -> set[str]:
    found = sandbox.client("ec2").describe_volumes(Filters=[
        {"Name": "status", "Values": ["available", "creating"]}])["Volumes"]
    return {v["VolumeId"] for v in found}


def test_offline_repair_loses_no_target_to_lost_replies(
        sandbox: Sandbox, tmp_path: Path) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=6, azs=2))

    report = run_losing_replies(sandbox, fleet, "ec2-offline-repair.yaml", tmp_path)

    for target in fleet.targets:
        assert root_mapping(sandbox, target.instance_id)["Ebs"]["VolumeId"] == \
            target.root_volume_id
        assert not sandbox.channel_file_present(target.root_volume_id)
        assert backups(sandbox, target.root_volume_id) == 1
    assert detached_volumes(sandbox) == set()
    # One rescue instance per AZ, however many RunInstances replies were lost.
    launched = sandbox.client("ec2").describe_instances(Filters=[
        {"Name": "tag:remediate:role", "Values": ["rescue"]}])["Reservations"]
    assert sum(len(r["Instances"]) for r in launched) == 2
    assert report["retries"]["unknown_outcomes"] > 0
    assert report["retries"]["reconciled"] > 0


def test_reboot_first_loses_no_target_to_lost_replies(
        sandbox: Sandbox, tmp_path: Path) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=0, reboot_fixable=6, reboots_to_fix=2, azs=1))

    run_losing_replies(sandbox, fleet, "ec2-reboot-first.yaml", tmp_path)

    for target in fleet.targets:
        assert root_mapping(sandbox, target.instance_id)["Ebs"]["VolumeId"] == \
            target.root_volume_id
    assert detached_volumes(sandbox) == set()


def test_replace_root_volume_loses_no_target_to_lost_replies(
        sandbox: Sandbox, tmp_path: Path) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=0, instance_store=2, spot_one_time=2, azs=1))

    run_losing_replies(sandbox, fleet, "ec2-replace-root-volume.yaml", tmp_path,
                       accepted=frozenset({"root-replacement-data-loss"}))

    ec2 = sandbox.client("ec2")
    for target in fleet.targets:
        assert backups(sandbox, target.root_volume_id) == 1
        tasks = ec2.describe_replace_root_volume_tasks(Filters=[
            {"Name": "instance-id", "Values": [target.instance_id]}])["ReplaceRootVolumeTasks"]
        assert [t["TaskState"] for t in tasks] == ["succeeded"]
        new_root = root_mapping(sandbox, target.instance_id)["Ebs"]["VolumeId"]
        assert new_root != target.root_volume_id
        assert not sandbox.channel_file_present(new_root)
    # The replaced roots are kept, detached (never deleted); nothing else is left off.
    assert detached_volumes(sandbox) == {t.root_volume_id for t in fleet.targets}
