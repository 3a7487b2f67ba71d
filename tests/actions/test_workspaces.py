"""WorkSpaces actions against the sandbox: states, FailedRequests, stuck reboots, reconciling."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from remediate.actions.contract import StepContext, Target
from remediate.actions.requests import Call, StepFailed
from remediate.actions.workspaces import Reboot, Rebuild, Restore, Start, WaitState
from remediate.sandbox import Fleet, FleetSpec
from sandbox_actions import REGION, Env, build

pytest_plugins = ["conftest_sandbox_actions"]


@pytest.fixture
def fleet(action_env: Env) -> Fleet:
    return build(action_env, FleetSpec(plain=0, workspaces=4, azs=1))


def workspace(fleet: Fleet, fixed_by: str) -> str:
    return next(w.workspace_id for w in fleet.workspaces if w.fixed_by == fixed_by)


def ctx(env: Env, workspace_id: str, **facts: Any) -> StepContext:
    return env.context(Target("workspace", workspace_id, REGION), facts)


def state(env: Env, workspace_id: str) -> str:
    described = env.client("workspaces").describe_workspaces(WorkspaceIds=[workspace_id])
    return str(described["Workspaces"][0]["State"])


def force_state(env: Env, workspace_id: str, new_state: str) -> None:
    """Put a WorkSpace in a state no API call leads to directly (stuck, in error)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.workspaces.models import workspaces_backends

    backend = workspaces_backends[DEFAULT_ACCOUNT_ID][REGION]
    backend.workspaces[workspace_id].state = new_state
    env.sandbox.world.workspace(workspace_id).state_since = env.clock.now()


def test_inspect_reads_the_facts_of_the_kind(action_env: Env, fleet: Fleet) -> None:
    workspace_id = workspace(fleet, "stopped")
    facts = action_env.run("workspaces.inspect", ctx(action_env, workspace_id), {})
    made = next(w for w in fleet.workspaces if w.workspace_id == workspace_id)
    assert facts == {
        "id": workspace_id, "region": REGION, "account": "default", "state": "STOPPED",
        "tags": {"incident": "crowdstrike-2024-07-19"}, "directory_id": made.directory_id,
        "bundle_id": "wsb-sandbox01", "user_name": "user00003",
        "computer_name": facts["computer_name"], "running_mode": "AUTO_STOP",
    }


def test_inspect_of_a_missing_workspace_fails(action_env: Env, fleet: Fleet) -> None:
    with pytest.raises(StepFailed, match=r"^WorkSpace ws-00000000 does not exist$"):
        action_env.run("workspaces.inspect", ctx(action_env, "ws-00000000"), {})


def test_start_starts_a_stopped_workspace(action_env: Env, fleet: Fleet) -> None:
    workspace_id = workspace(fleet, "stopped")
    assert action_env.run("workspaces.start", ctx(action_env, workspace_id), {}) == {
        "started": True, "state": "AVAILABLE"}
    assert state(action_env, workspace_id) == "AVAILABLE"
    [call] = [c for c in action_env.runtime.calls if c.operation == "StartWorkspaces"]
    assert call.batch_key == "StartWorkspaceRequests"
    assert action_env.run("workspaces.start", ctx(action_env, workspace_id), {}) == {
        "started": False, "state": "AVAILABLE"}
    assert action_env.runtime.count("StartWorkspaces") == 1


def test_start_skips_a_workspace_that_is_not_stopped(action_env: Env, fleet: Fleet) -> None:
    workspace_id = workspace(fleet, "reboot")
    assert action_env.run("workspaces.start", ctx(action_env, workspace_id), {}) == {
        "started": False, "state": "UNHEALTHY"}
    assert action_env.runtime.count("StartWorkspaces") == 0
    assert Start().plan(ctx(action_env, workspace_id, state="UNHEALTHY"), {}).skip == (
        "the WorkSpace is UNHEALTHY, not STOPPED")
    assert Start().plan(ctx(action_env, workspace_id, state="STOPPED"), {}).skip is None


def test_reboot_heals_a_workspace_a_reboot_fixes(action_env: Env, fleet: Fleet) -> None:
    workspace_id = workspace(fleet, "reboot")
    assert action_env.run("workspaces.reboot", ctx(action_env, workspace_id), {}) == {
        "healthy": True, "state": "AVAILABLE"}
    [call] = [c for c in action_env.runtime.calls if c.operation == "RebootWorkspaces"]
    assert (call.batch_key, call.params) == (
        "RebootWorkspaceRequests", {"RebootWorkspaceRequests": [{"WorkspaceId": workspace_id}]})


def test_reboot_reports_a_workspace_it_cannot_heal(action_env: Env, fleet: Fleet) -> None:
    workspace_id = workspace(fleet, "restore")
    assert action_env.run("workspaces.reboot", ctx(action_env, workspace_id), {}) == {
        "healthy": False, "state": "UNHEALTHY"}
    with pytest.raises(StepFailed) as failed:
        action_env.run("workspaces.reboot", ctx(action_env, workspace_id),
                       {"require_healthy": True})
    assert str(failed.value) == (
        f"WorkSpace {workspace_id} is UNHEALTHY after RebootWorkspaces, not AVAILABLE")


def test_reboot_refuses_a_stopped_workspace(action_env: Env, fleet: Fleet) -> None:
    workspace_id = workspace(fleet, "stopped")
    with pytest.raises(StepFailed) as failed:
        action_env.run("workspaces.reboot", ctx(action_env, workspace_id), {})
    assert str(failed.value) == (
        f"WorkSpace {workspace_id} is STOPPED: RebootWorkspaces needs AVAILABLE, UNHEALTHY (or "
        "REBOOTING for over 20 minutes)")
    assert action_env.runtime.count("RebootWorkspaces") == 0
    plan = Reboot().plan(ctx(action_env, workspace_id, state="STOPPED"), {})
    assert plan.note == ("RebootWorkspaces, wait until it leaves REBOOTING; would fail: the "
                         "WorkSpace is STOPPED")


def test_a_reboot_under_way_is_waited_for_not_sent_again(action_env: Env, fleet: Fleet) -> None:
    workspace_id = workspace(fleet, "reboot")
    action_env.client("workspaces").reboot_workspaces(
        RebootWorkspaceRequests=[{"WorkspaceId": workspace_id}])
    assert state(action_env, workspace_id) == "REBOOTING"
    assert action_env.run("workspaces.reboot", ctx(action_env, workspace_id), {}) == {
        "healthy": True, "state": "AVAILABLE"}
    assert action_env.runtime.count("RebootWorkspaces") == 0


def test_a_workspace_stuck_rebooting_is_rebooted_again(action_env: Env, fleet: Fleet) -> None:
    workspace_id = workspace(fleet, "reboot")
    force_state(action_env, workspace_id, "REBOOTING")  # and nothing will end it
    started = action_env.clock.now()
    assert action_env.run("workspaces.reboot", ctx(action_env, workspace_id), {}) == {
        "healthy": True, "state": "AVAILABLE"}
    assert action_env.runtime.count("RebootWorkspaces") == 1
    assert action_env.clock.now() - started >= 1200


def test_failed_requests_become_step_failures() -> None:
    gen = Reboot().run(StepContext("run", Target("workspace", "ws-1", REGION), {}, None),  # type: ignore[arg-type]
                       {"timeout": 600.0, "require_healthy": False})
    next(gen)  # read the WorkSpace
    call = gen.send({"WorkspaceId": "ws-1", "State": "AVAILABLE"})
    assert isinstance(call, Call) and call.operation == "RebootWorkspaces"
    batched: Mapping[str, Any] = {"FailedRequests": [
        {"WorkspaceId": "ws-2", "ErrorCode": "Other", "ErrorMessage": "not ours"},
        {"WorkspaceId": "ws-1", "ErrorCode": "InvalidResourceState",
         "ErrorMessage": "The specified WorkSpace has an invalid state for this operation."},
    ]}
    with pytest.raises(StepFailed) as failed:
        gen.send(batched)
    assert str(failed.value) == (
        "RebootWorkspaces refused ws-1: InvalidResourceState: The specified WorkSpace has an "
        "invalid state for this operation.")


def test_restore_heals_what_a_reboot_cannot(action_env: Env, fleet: Fleet) -> None:
    workspace_id = workspace(fleet, "restore")
    assert action_env.run("workspaces.restore", ctx(action_env, workspace_id), {}) == {
        "healthy": True, "state": "AVAILABLE"}
    assert action_env.runtime.count("RestoreWorkspace") == 1


def test_restore_that_does_not_heal_ends_in_error(action_env: Env, fleet: Fleet) -> None:
    workspace_id = workspace(fleet, "rebuild")
    assert action_env.run("workspaces.restore", ctx(action_env, workspace_id), {}) == {
        "healthy": False, "state": "ERROR"}


def test_restore_refuses_a_rebooting_workspace(action_env: Env, fleet: Fleet) -> None:
    workspace_id = workspace(fleet, "restore")
    force_state(action_env, workspace_id, "REBOOTING")
    with pytest.raises(StepFailed) as failed:
        action_env.run("workspaces.restore", ctx(action_env, workspace_id), {})
    assert str(failed.value) == (
        f"WorkSpace {workspace_id} is REBOOTING: RestoreWorkspace needs AVAILABLE, ERROR, "
        "STOPPED, UNHEALTHY")


def test_rebuild_heals_the_rest_even_from_rebooting(action_env: Env, fleet: Fleet) -> None:
    workspace_id = workspace(fleet, "rebuild")
    force_state(action_env, workspace_id, "REBOOTING")
    assert action_env.run("workspaces.rebuild", ctx(action_env, workspace_id), {}) == {
        "healthy": True, "state": "AVAILABLE"}
    [call] = [c for c in action_env.runtime.calls if c.operation == "RebuildWorkspaces"]
    assert call.params == {"RebuildWorkspaceRequests": [{"WorkspaceId": workspace_id}]}


def test_a_rebuild_under_way_is_waited_for(action_env: Env, fleet: Fleet) -> None:
    workspace_id = workspace(fleet, "rebuild")
    action_env.client("workspaces").rebuild_workspaces(
        RebuildWorkspaceRequests=[{"WorkspaceId": workspace_id}])
    assert action_env.run("workspaces.rebuild", ctx(action_env, workspace_id), {}) == {
        "healthy": True, "state": "AVAILABLE"}
    assert action_env.runtime.count("RebuildWorkspaces") == 0


def test_destructive_actions_declare_their_data_loss() -> None:
    assert (Restore.destructive, Rebuild.destructive) == (
        "workspace-restore-data-loss", "workspace-rebuild-data-loss")
    assert Reboot.destructive is None
    assert Reboot.batches == {"workspaces:RebootWorkspaces": 25}


def test_wait_state_waits_and_fails_on_bad_states(action_env: Env, fleet: Fleet) -> None:
    workspace_id = workspace(fleet, "stopped")
    action_env.client("workspaces").start_workspaces(
        StartWorkspaceRequests=[{"WorkspaceId": workspace_id}])
    assert action_env.run("workspaces.wait_state", ctx(action_env, workspace_id),
                          {"states": "AVAILABLE"}) == {"state": "AVAILABLE"}

    broken = workspace(fleet, "restore")
    with pytest.raises(StepFailed) as failed:
        action_env.run("workspaces.wait_state", ctx(action_env, broken),
                       {"states": ["AVAILABLE"], "fail_on": ["UNHEALTHY", "ERROR"]})
    assert str(failed.value) == f"WorkSpace {broken} AVAILABLE: it is UNHEALTHY"
    assert WaitState().plan(ctx(action_env, broken, state="AVAILABLE"),
                            {"states": ["AVAILABLE"]}).skip == "the WorkSpace is already AVAILABLE"
