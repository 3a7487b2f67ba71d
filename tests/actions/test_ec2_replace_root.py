from __future__ import annotations

from typing import Any

import pytest

from ec2_harness import Crash, Ec2Env
from remediate.actions.ec2_replace_root import ReplaceRoot
from remediate.actions.registry import get
from remediate.actions.requests import StepFailed, WaitFailed
from remediate.executor.driver import run_action


def task(env: Ec2Env, task_id: str) -> dict[str, Any]:
    found: dict[str, Any] = env.client.describe_replace_root_volume_tasks(
        ReplaceRootVolumeTaskIds=[task_id])["ReplaceRootVolumeTasks"][0]
    return found


def test_replace_to_launch_state_keeps_the_old_root(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    facts = ec2_env.facts(target)
    out = ec2_env.run("ec2.replace_root", target, {"restore_to": "launch-state"}, facts=facts)
    old = facts["root_volume_id"]
    assert out["previous_volume_id"] == old
    assert out["volume_id"] not in (None, old)
    root = ec2_env.root(target.id)
    assert root is not None and root["Ebs"]["VolumeId"] == out["volume_id"]
    assert root["Ebs"]["DeleteOnTermination"] is True
    assert ec2_env.volume(old)["State"] == "available"  # kept, detached
    recorded = task(ec2_env, out["task_id"])
    assert recorded["TaskState"] == "succeeded"
    assert recorded["DeleteReplacedRootVolume"] is False
    assert {t["Key"]: t["Value"] for t in recorded["Tags"]} == {
        "remediate:run-id": "run-1", "remediate:target": target.id,
        "remediate:previous-volume": old}
    assert not ec2_env.sandbox.channel_file_present(out["volume_id"])
    assert ec2_env.run("ec2.verify_status", target) == {"status": "ok"}


def test_replace_from_a_snapshot(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    snapshot = ec2_env.run("ec2.snapshot_root", target)["snapshot_id"]
    out = ec2_env.run("ec2.replace_root", target, {"snapshot_id": snapshot})
    assert task(ec2_env, out["task_id"])["SnapshotId"] == snapshot
    assert ec2_env.volume(out["volume_id"])["SnapshotId"] == snapshot


def test_replace_root_is_idempotent(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    first = ec2_env.run("ec2.replace_root", target, {"restore_to": "launch-state"})
    again = ec2_env.run("ec2.replace_root", target, {"restore_to": "launch-state"})
    assert again == first
    assert ec2_env.calls("CreateReplaceRootVolumeTask") == 1


def test_replace_root_resumes_a_task_in_flight(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    old = ec2_env.fleet.target(target.id).root_volume_id
    with pytest.raises(Crash):
        run_action("ec2.replace_root", target, {"restore_to": "launch-state"},
                   ec2_env.crashing("CreateReplaceRootVolumeTask"), run_id="run-1")
    out = ec2_env.run("ec2.replace_root", target, {"restore_to": "launch-state"})
    assert ec2_env.calls("CreateReplaceRootVolumeTask") == 1
    assert out["previous_volume_id"] == old
    assert task(ec2_env, out["task_id"])["TaskState"] == "succeeded"


def test_replace_root_keeps_instance_store_data(ec2_env: Ec2Env) -> None:
    target = ec2_env.target("instance_store")
    ec2_env.run("ec2.replace_root", target, {"restore_to": "launch-state"})
    assert ec2_env.sandbox.instance_store_intact(target.id)
    assert ec2_env.state(target.id) == "running"


def test_replace_root_of_a_stopped_instance_fails_before_calling(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    ec2_env.run("ec2.stop", target)
    with pytest.raises(StepFailed) as failed:
        ec2_env.run("ec2.replace_root", target, {"restore_to": "launch-state"})
    assert str(failed.value) == (f"{target.id} is stopped: root-volume replacement needs a "
                                 "running instance; start it first (ec2.start)")
    assert ec2_env.calls("CreateReplaceRootVolumeTask") == 0


def test_a_failed_task_fails_the_step_and_a_retry_starts_a_new_one(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    with pytest.raises(Crash):
        run_action("ec2.replace_root", target, {"restore_to": "launch-state"},
                   ec2_env.crashing("CreateReplaceRootVolumeTask"), run_id="run-1")
    ec2_env.client.stop_instances(InstanceIds=[target.id])  # the task fails without a runner
    with pytest.raises(WaitFailed) as failed:
        ec2_env.run("ec2.replace_root", target, {"restore_to": "launch-state"})
    assert str(failed.value).endswith("replace-root-task is failed")
    ec2_env.run("ec2.start", target)
    out = ec2_env.run("ec2.replace_root", target, {"restore_to": "launch-state"})
    assert ec2_env.calls("CreateReplaceRootVolumeTask") == 2
    assert task(ec2_env, out["task_id"])["TaskState"] == "succeeded"


@pytest.mark.parametrize(("params", "problems"), [
    ({"restore_to": "launch-state"}, []),
    ({"snapshot_id": "${{ steps.backup.outputs.snapshot_id }}"}, []),
    ({}, [((), "expected exactly one of snapshot_id, image_id, volume_id, restore_to: "
               "launch-state; found none")]),
    ({"snapshot_id": "snap-0123456789abcdef0", "restore_to": "launch-state"},
     [((), "expected exactly one of snapshot_id, image_id, volume_id, restore_to: "
           "launch-state; found snapshot_id, restore_to")]),
    ({"restore_to": "launch-state", "delete_replaced_root_volume": True},
     [(("delete_replaced_root_volume",), "remediate never deletes a customer volume; the "
       "replaced root volume is kept (delete it yourself once you have checked it)")]),
])
def test_validate(params: dict[str, Any], problems: list[Any]) -> None:
    assert [(p.path, p.message) for p in ReplaceRoot().validate(params, ".")] == problems


def test_run_refuses_to_delete_the_replaced_volume(ec2_env: Ec2Env) -> None:
    with pytest.raises(StepFailed) as failed:
        ec2_env.run("ec2.replace_root", ec2_env.target(),
                    {"restore_to": "launch-state", "delete_replaced_root_volume": True})
    assert str(failed.value) == ("remediate never deletes a customer volume: "
                                 "delete_replaced_root_volume must be false")
    assert ec2_env.calls("CreateReplaceRootVolumeTask") == 0


def test_plan_and_contract(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    snapshot = "snap-0123456789abcdef0"
    running = ec2_env.plan("ec2.replace_root", {"state": "running"}, {"snapshot_id": snapshot})
    assert [(c.api, c.mutating, c.note) for c in running.calls] == [
        ("ec2:CreateReplaceRootVolumeTask", True,
         f"replace the root of {target.id} from {snapshot}")]
    assert running.note == ""
    stopped = ec2_env.plan("ec2.replace_root", {"state": "stopped"},
                           {"restore_to": "launch-state"})
    assert stopped.calls[0].note.endswith("to its launch state")
    assert stopped.note == ("the instance is stopped: replacement needs it running, so this "
                            "step would fail")
    action = get("ec2.replace_root")
    assert action is not None
    assert action.destructive == "root-replacement-data-loss"
    assert action.start_states == frozenset({"running"})
