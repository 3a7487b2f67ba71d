from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from ec2_harness import Crash, Ec2Env
from remediate.actions.contract import Plan, PlannedCall, StepContext, Target
from remediate.actions.ec2_inspect import ROOT_DEVICE_TAG, ROOT_DOT_TAG, ROOT_OF_TAG
from remediate.actions.registry import get
from remediate.actions.requests import StepFailed
from remediate.executor.driver import run_action
from remediate.language.problems import Problems


def tags(record: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in record.get("Tags", [])}


def stopped_target(env: Ec2Env) -> tuple[Target, dict[str, Any]]:
    target = env.target()
    facts = env.facts(target)
    env.run("ec2.stop", target)
    return target, facts


def detached(env: Ec2Env) -> tuple[Target, dict[str, Any]]:
    target, facts = stopped_target(env)
    env.run("ec2.detach_root", target, facts=facts)
    return target, facts


def on_rescue(env: Ec2Env) -> tuple[Target, dict[str, Any], str]:
    """The swap's middle: the root volume attached to a rescue instance as xvdf."""
    target, facts = detached(env)
    rescue = env.rescue(facts["availability_zone"])
    env.client.attach_volume(VolumeId=facts["root_volume_id"], InstanceId=rescue, Device="xvdf")
    env.settle()
    return target, facts, rescue


def assert_root_back(env: Ec2Env, target: Target, facts: dict[str, Any]) -> None:
    root = env.root(target.id)
    assert root is not None
    assert root["Ebs"]["VolumeId"] == facts["root_volume_id"]
    volume = env.volume(facts["root_volume_id"])
    assert volume["State"] == "in-use"
    assert [(a["InstanceId"], a["Device"]) for a in volume["Attachments"]] == [
        (target.id, "/dev/sda1")]


# --- ec2.snapshot_root ---


def test_snapshot_root_takes_one_tagged_backup(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    facts = ec2_env.facts(target)
    out = ec2_env.run("ec2.snapshot_root", target, facts=facts)
    assert out["volume_id"] == facts["root_volume_id"]
    snapshot = ec2_env.client.describe_snapshots(SnapshotIds=[out["snapshot_id"]])["Snapshots"][0]
    assert snapshot["State"] == "completed"
    assert snapshot["VolumeId"] == facts["root_volume_id"]
    assert tags(snapshot) == {"remediate:run-id": "run-1", "remediate:target": target.id,
                              "remediate:purpose": "backup", "Name": f"{target.id} root backup"}


def test_snapshot_root_reuses_its_snapshot_on_rerun(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    first = ec2_env.run("ec2.snapshot_root", target)
    again = ec2_env.run("ec2.snapshot_root", target)
    assert again == first
    assert ec2_env.calls("CreateSnapshot") == 1
    # Another run takes its own backup.
    other = ec2_env.run("ec2.snapshot_root", target, run_id="run-2")
    assert other["snapshot_id"] != first["snapshot_id"]
    assert ec2_env.calls("CreateSnapshot") == 2


def test_snapshot_root_after_a_crash_finds_the_pending_snapshot(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    with pytest.raises(Crash):
        run_action("ec2.snapshot_root", target, {}, ec2_env.crashing("CreateSnapshot"),
                   run_id="run-1")
    out = ec2_env.run("ec2.snapshot_root", target)
    assert ec2_env.calls("CreateSnapshot") == 1
    snapshot = ec2_env.client.describe_snapshots(SnapshotIds=[out["snapshot_id"]])["Snapshots"][0]
    assert snapshot["State"] == "completed"


def test_snapshot_root_without_waiting(ec2_env: Ec2Env) -> None:
    out = ec2_env.run("ec2.snapshot_root", ec2_env.target(), {"wait": False})
    snapshot = ec2_env.client.describe_snapshots(SnapshotIds=[out["snapshot_id"]])["Snapshots"][0]
    assert snapshot["State"] == "pending"


def snapshot_in_step(env: Ec2Env, target: Target, *, sent: bool,
                     sent_in_run: bool) -> Mapping[str, Any]:
    """ec2.snapshot_root as a playbook step whose journal says whether it sent
    CreateSnapshot before: in this pass (a retry, a resume), or in an earlier pass only
    (a target started again after a rollback)."""
    action = get("ec2.snapshot_root")
    assert action is not None
    params = action.params.check({}, ("with",), Problems())
    ctx = StepContext(run_id="run-1", target=target, facts=env.facts(target),
                      runtime=env.runtime, step_id="backup",
                      sent_before=lambda _operation: sent,
                      sent_in_run=lambda _operation: sent_in_run)
    return env.runtime.drive(action.run(ctx, params), target.region)


def test_snapshot_root_looks_for_its_backup_only_when_it_may_have_made_one(
        ec2_env: Ec2Env) -> None:
    target = ec2_env.target()

    def lookups() -> int:  # DescribeSnapshots by the backup's tags (the wait reads by id)
        return sum(1 for c in ec2_env.sandbox.api_calls if c.operation == "DescribeSnapshots"
                   and c.names("tag:remediate:purpose"))

    first = snapshot_in_step(ec2_env, target, sent=False, sent_in_run=False)
    # A fresh target's first attempt made it at once, without looking.
    assert (lookups(), ec2_env.calls("CreateSnapshot")) == (0, 1)
    # A retry, and a target started again in a new pass, find it: no second backup.
    assert snapshot_in_step(ec2_env, target, sent=True, sent_in_run=True) == first
    assert snapshot_in_step(ec2_env, target, sent=False, sent_in_run=True) == first
    assert (lookups(), ec2_env.calls("CreateSnapshot")) == (2, 1)


def test_snapshot_root_of_a_missing_volume_fails(ec2_env: Ec2Env) -> None:
    with pytest.raises(StepFailed) as failed:
        ec2_env.run("ec2.snapshot_root", ec2_env.target(), {"volume_id": "vol-0123456789abcdef0"})
    assert str(failed.value).startswith(
        "CreateSnapshot for vol-0123456789abcdef0 failed: InvalidVolume.NotFound: ")


def test_snapshot_root_plan(ec2_env: Ec2Env) -> None:
    plan = ec2_env.plan("ec2.snapshot_root", {"root_volume_id": "vol-1"})
    target = ec2_env.target().id
    # The permission probe asks as the real call would: with the backup tags the policy
    # requires (aws:RequestTag/remediate:purpose).
    assert plan == Plan(
        calls=(PlannedCall("ec2:DescribeSnapshots", False),
               PlannedCall("ec2:CreateSnapshot", True, "snapshot vol-1", probe={
                   "VolumeId": "vol-1",
                   "Description": f"remediate run run-1: backup of {target} root vol-1",
                   "TagSpecifications": [{"ResourceType": "snapshot", "Tags": [
                       {"Key": "remediate:run-id", "Value": "run-1"},
                       {"Key": "remediate:target", "Value": target},
                       {"Key": "remediate:purpose", "Value": "backup"},
                       {"Key": "Name", "Value": f"{target} root backup"}]}]})),
        note="reuses this run's backup snapshot if one exists")


# --- ec2.detach_root ---


def test_detach_root_detaches_tags_and_is_idempotent(ec2_env: Ec2Env) -> None:
    target, facts = stopped_target(ec2_env)
    volume_id = facts["root_volume_id"]
    out = ec2_env.run("ec2.detach_root", target, facts=facts)
    assert out == {"volume_id": volume_id, "device": "/dev/sda1", "attached_to": None}
    volume = ec2_env.volume(volume_id)
    assert (volume["State"], volume["Attachments"]) == ("available", [])
    assert ec2_env.root(target.id) is None
    assert {k: v for k, v in tags(volume).items() if k.startswith("remediate:")} == {
        ROOT_OF_TAG: target.id, ROOT_DEVICE_TAG: "/dev/sda1", ROOT_DOT_TAG: "true",
        "remediate:run-id": "run-1"}
    assert ec2_env.run("ec2.detach_root", target, facts=facts) == out
    assert ec2_env.calls("DetachVolume") == 1


def test_detach_root_sets_exactly_the_tags_its_scoped_permission_allows(
        ec2_env: Ec2Env) -> None:
    target, facts = stopped_target(ec2_env)
    ec2_env.run("ec2.detach_root", target, facts=facts)
    detach = get("ec2.detach_root")
    assert detach is not None
    (grant,) = [g for g in detach.scoped_permissions if g.action == "ec2:CreateTags"]
    (tag_keys,) = grant.conditions
    assert (grant.action, tag_keys.key) == ("ec2:CreateTags", "aws:TagKeys")
    set_by_remediate = sorted(k for k in tags(ec2_env.volume(facts["root_volume_id"]))
                              if k.startswith("remediate:"))
    assert set_by_remediate == list(tag_keys.values)


def test_detach_root_refuses_a_running_instance(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    with pytest.raises(StepFailed) as failed:
        ec2_env.run("ec2.detach_root", target)
    assert str(failed.value) == (
        f"{target.id} is running: AWS detaches a root volume only from a stopped instance; "
        "stop it first (ec2.stop)")
    assert ec2_env.root(target.id) is not None


def test_detach_root_waits_for_a_stopping_instance(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    facts = ec2_env.facts(target)
    ec2_env.client.stop_instances(InstanceIds=[target.id])
    ec2_env.run("ec2.detach_root", target, facts=facts)
    assert ec2_env.volume(facts["root_volume_id"])["State"] == "available"


def test_detach_root_finishes_a_detach_in_flight(ec2_env: Ec2Env) -> None:
    target, facts = stopped_target(ec2_env)
    with pytest.raises(Crash):
        run_action("ec2.detach_root", target, {}, ec2_env.crashing("DetachVolume"), facts=facts)
    assert ec2_env.volume(facts["root_volume_id"])["Attachments"][0]["State"] == "detaching"
    out = ec2_env.run("ec2.detach_root", target, facts=facts)
    assert out["attached_to"] is None
    assert ec2_env.volume(facts["root_volume_id"])["State"] == "available"
    assert ec2_env.calls("DetachVolume") == 1


def test_detach_root_is_done_once_the_volume_is_on_the_rescue(ec2_env: Ec2Env) -> None:
    target, facts, rescue = on_rescue(ec2_env)
    out = ec2_env.run("ec2.detach_root", target, facts=facts)
    assert out == {"volume_id": facts["root_volume_id"], "device": "/dev/sda1",
                   "attached_to": rescue}
    assert ec2_env.calls("DetachVolume") == 1


def test_detach_root_plan(ec2_env: Ec2Env) -> None:
    facts = {"root_volume_id": "vol-1", "root_device_name": "/dev/sda1"}
    assert ec2_env.plan("ec2.detach_root", facts).calls == (
        PlannedCall("ec2:CreateTags", True, "detach vol-1 from /dev/sda1"),
        PlannedCall("ec2:DetachVolume", True, "detach vol-1 from /dev/sda1"))


# --- ec2.reattach_root ---


def test_reattach_root_puts_an_available_volume_back(ec2_env: Ec2Env) -> None:
    target, facts = detached(ec2_env)
    out = ec2_env.run("ec2.reattach_root", target, facts=facts)
    assert out == {"volume_id": facts["root_volume_id"], "device": "/dev/sda1"}
    assert_root_back(ec2_env, target, facts)
    assert ec2_env.run("ec2.reattach_root", target, facts=facts) == out
    assert ec2_env.calls("AttachVolume") == 1


def test_reattach_root_takes_the_volume_off_the_rescue_instance(ec2_env: Ec2Env) -> None:
    target, facts, rescue = on_rescue(ec2_env)
    ec2_env.run("ec2.reattach_root", target, facts=facts)
    assert_root_back(ec2_env, target, facts)
    rescue_devices = [m["DeviceName"] for m in ec2_env.instance(rescue)["BlockDeviceMappings"]]
    assert "xvdf" not in rescue_devices


def test_reattach_root_resumes_after_a_crash_mid_detach(ec2_env: Ec2Env) -> None:
    target, facts, _rescue = on_rescue(ec2_env)
    with pytest.raises(Crash):
        run_action("ec2.reattach_root", target, {}, ec2_env.crashing("DetachVolume"),
                   facts=facts)
    ec2_env.run("ec2.reattach_root", target, facts=facts)
    assert_root_back(ec2_env, target, facts)


def test_reattach_root_resumes_after_a_crash_mid_attach(ec2_env: Ec2Env) -> None:
    target, facts = detached(ec2_env)
    with pytest.raises(Crash):
        run_action("ec2.reattach_root", target, {}, ec2_env.crashing("AttachVolume"),
                   facts=facts)
    ec2_env.run("ec2.reattach_root", target, facts=facts)
    assert_root_back(ec2_env, target, facts)
    assert ec2_env.calls("AttachVolume") == 1


def test_reattach_root_finds_the_volume_by_its_tags_without_facts(ec2_env: Ec2Env) -> None:
    target, facts, _rescue = on_rescue(ec2_env)
    out = ec2_env.run("ec2.reattach_root", target, facts={})
    assert out == {"volume_id": facts["root_volume_id"], "device": "/dev/sda1"}
    assert_root_back(ec2_env, target, facts)


def test_reattach_root_without_facts_or_tags_fails(ec2_env: Ec2Env) -> None:
    target, facts = stopped_target(ec2_env)
    ec2_env.client.detach_volume(VolumeId=facts["root_volume_id"], InstanceId=target.id,
                                 Device="/dev/sda1")
    ec2_env.settle()
    with pytest.raises(StepFailed) as failed:
        ec2_env.run("ec2.reattach_root", target, facts={})
    assert str(failed.value) == (
        f"{target.id} has nothing at its root device /dev/sda1 and no volume is tagged "
        f"{ROOT_OF_TAG}={target.id}; say which volume with volume_id")


def test_reattach_root_refuses_to_displace_another_root(ec2_env: Ec2Env) -> None:
    target, facts = detached(ec2_env)
    intruder = ec2_env.client.create_volume(
        AvailabilityZone=facts["availability_zone"], Size=30)["VolumeId"]
    ec2_env.settle()
    ec2_env.client.attach_volume(VolumeId=intruder, InstanceId=target.id, Device="/dev/sda1")
    ec2_env.settle()
    with pytest.raises(StepFailed) as failed:
        ec2_env.run("ec2.reattach_root", target, facts=facts)
    volume_id = facts["root_volume_id"]
    assert str(failed.value) == (
        f"/dev/sda1 of {target.id} holds {intruder}, not {volume_id}; refusing to displace it "
        f"(detach it yourself if {volume_id} is the one to boot)")
    assert ec2_env.volume(volume_id)["State"] == "available"


def test_reattach_root_refuses_a_volume_in_another_zone(ec2_env: Ec2Env) -> None:
    target, facts = stopped_target(ec2_env)
    zone = facts["availability_zone"]
    other_zone = next(z for z in ec2_env.fleet.regions["us-east-1"].subnets if z != zone)
    stray = ec2_env.client.create_volume(AvailabilityZone=other_zone, Size=30)["VolumeId"]
    ec2_env.settle()
    with pytest.raises(StepFailed) as failed:
        ec2_env.run("ec2.reattach_root", target, {"volume_id": stray, "device": "/dev/sdf"},
                    facts=facts)
    assert str(failed.value) == (
        f"{stray} is in {other_zone} but {target.id} is in {zone}; a volume attaches only "
        "within its Availability Zone")


def test_reattach_root_plan(ec2_env: Ec2Env) -> None:
    facts = {"root_volume_id": "vol-1", "root_device_name": "/dev/sda1"}
    found = ec2_env.plan("ec2.reattach_root", facts)
    assert [c.api for c in found.calls] == ["ec2:DetachVolume", "ec2:AttachVolume"]
    assert found.calls[1].note == "attach vol-1 at /dev/sda1"


# --- ec2.restore_root_settings ---


def test_restore_root_settings_restores_the_flag_and_starts(ec2_env: Ec2Env) -> None:
    target, facts = detached(ec2_env)
    ec2_env.run("ec2.reattach_root", target, facts=facts)
    root = ec2_env.root(target.id)
    assert root is not None and root["Ebs"]["DeleteOnTermination"] is False  # attach resets it
    out = ec2_env.run("ec2.restore_root_settings", target, facts=facts)
    assert out == {"delete_on_termination": True, "state": "running"}
    root = ec2_env.root(target.id)
    assert root is not None and root["Ebs"]["DeleteOnTermination"] is True
    assert ec2_env.state(target.id) == "running"
    assert ec2_env.run("ec2.restore_root_settings", target, facts=facts) == out
    assert ec2_env.calls("ModifyInstanceAttribute") == 1
    assert ec2_env.calls("StartInstances") == 1


def test_restore_root_settings_leaves_a_stopped_instance_stopped(ec2_env: Ec2Env) -> None:
    target, facts = detached(ec2_env)
    ec2_env.run("ec2.reattach_root", target, facts=facts)
    out = ec2_env.run("ec2.restore_root_settings", target, {"start": False}, facts=facts)
    assert out == {"delete_on_termination": True, "state": "stopped"}
    facts_when_stopped = {**facts, "state": "stopped"}
    out = ec2_env.run("ec2.restore_root_settings", target, {"delete_on_termination": False},
                      facts=facts_when_stopped)
    assert out == {"delete_on_termination": False, "state": "stopped"}


def test_restore_root_settings_needs_the_root_back(ec2_env: Ec2Env) -> None:
    target, facts = detached(ec2_env)
    with pytest.raises(StepFailed) as failed:
        ec2_env.run("ec2.restore_root_settings", target, facts=facts)
    assert str(failed.value) == (f"nothing is attached at /dev/sda1 of {target.id}; put the "
                                 "root volume back first (ec2.reattach_root)")


def test_restore_root_settings_plan(ec2_env: Ec2Env) -> None:
    running = ec2_env.plan("ec2.restore_root_settings", {"state": "running"})
    assert [c.api for c in running.calls] == ["ec2:ModifyInstanceAttribute",
                                              "ec2:StartInstances"]
    stopped = ec2_env.plan("ec2.restore_root_settings", {"state": "stopped"})
    assert [c.api for c in stopped.calls] == ["ec2:ModifyInstanceAttribute"]


# --- the swap and its rollback, end to end ---


def test_rollback_from_the_rescue_restores_the_original_instance(ec2_env: Ec2Env) -> None:
    target, facts, _rescue = on_rescue(ec2_env)
    ec2_env.run("ec2.reattach_root", target, facts=facts)
    ec2_env.run("ec2.restore_root_settings", target, facts=facts)
    assert_root_back(ec2_env, target, facts)
    again = ec2_env.facts(target)
    keep = ("state", "root_volume_id", "root_device_name", "root_delete_on_termination")
    assert {k: again[k] for k in keep} == {k: facts[k] for k in keep}


def test_repaired_volume_boots_healthy(ec2_env: Ec2Env) -> None:
    target, facts, _rescue = on_rescue(ec2_env)
    ec2_env.sandbox.world.bad_volumes.discard(facts["root_volume_id"])  # the repair's effect
    ec2_env.run("ec2.reattach_root", target, facts=facts)
    ec2_env.run("ec2.restore_root_settings", target, facts=facts)
    assert ec2_env.run("ec2.verify_status", target) == {"status": "ok"}


def test_volume_actions_never_delete() -> None:
    for name in ("ec2.snapshot_root", "ec2.detach_root", "ec2.reattach_root",
                 "ec2.restore_root_settings"):
        action = get(name)
        assert action is not None and action.mutating
        assert not any("Delete" in p for p in action.permissions), name
