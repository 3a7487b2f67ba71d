"""WorkSpaces actions against the sandbox: states, FailedRequests, stuck reboots, a broken
WorkSpace that starts UNHEALTHY, resumed and reconciled steps that never send a restore or
a rebuild twice, lost replies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from remediate.actions.contract import StepContext, Target
from remediate.actions.requests import AwsError, Call, StepFailed, Wait
from remediate.actions.workspaces import Reboot, Rebuild, Restore, Start, WaitState
from remediate.sandbox import Fleet, FleetSpec
from sandbox_actions import REGION, Env, GateRuntime, build

pytest_plugins = ["conftest_sandbox_actions"]


@pytest.fixture
def fleet(action_env: Env) -> Fleet:
    return build(action_env, FleetSpec(plain=0, workspaces=5, azs=1))


def workspace(fleet: Fleet, fixed_by: str) -> str:
    return next(w.workspace_id for w in fleet.workspaces if w.fixed_by == fixed_by)


def ctx(env: Env, workspace_id: str, *, sent: bool = False, **facts: Any) -> StepContext:
    """A step's context; ``sent``: the journal holds a call of this step's operation (a
    resumed or reconciled step), else a first attempt, as the executor says."""
    return env.context(Target("workspace", workspace_id, REGION), facts,
                       sent_before=lambda _operation: sent)


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
        "started": True, "healthy": True, "state": "AVAILABLE"}
    assert state(action_env, workspace_id) == "AVAILABLE"
    [call] = [c for c in action_env.runtime.calls if c.operation == "StartWorkspaces"]
    assert call.batch_key == "StartWorkspaceRequests"
    assert action_env.run("workspaces.start", ctx(action_env, workspace_id), {}) == {
        "started": False, "healthy": True, "state": "AVAILABLE"}
    assert action_env.runtime.count("StartWorkspaces") == 1


def test_start_skips_a_workspace_that_is_not_stopped(action_env: Env, fleet: Fleet) -> None:
    workspace_id = workspace(fleet, "reboot")
    assert action_env.run("workspaces.start", ctx(action_env, workspace_id), {}) == {
        "started": False, "healthy": False, "state": "UNHEALTHY"}
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
    first_attempt = StepContext("run", Target("workspace", "ws-1", REGION), {}, None,  # type: ignore[arg-type]
                                sent_before=lambda _operation: False)
    gen = Reboot().run(first_attempt, {"timeout": 600.0, "require_healthy": False})
    next(gen)  # read the WorkSpace
    call = gen.send({"WorkspaceId": "ws-1", "State": "AVAILABLE"})
    assert isinstance(call, Call) and call.operation == "RebootWorkspaces"
    batched: Mapping[str, Any] = {"FailedRequests": [
        {"WorkspaceId": "ws-2", "ErrorCode": "Other", "ErrorMessage": "not ours"},
        {"WorkspaceId": "ws-1", "ErrorCode": "InvalidResourceStateException",
         "ErrorMessage": "The state of the resource is not valid for this operation."},
    ]}
    assert isinstance(gen.send(batched), Wait)  # refused: what state is it in?
    with pytest.raises(StepFailed) as failed:
        gen.send({"WorkspaceId": "ws-1", "State": "STOPPED"})
    assert str(failed.value) == (
        "RebootWorkspaces refused ws-1: InvalidResourceStateException: The state of the "
        "resource is not valid for this operation. (it is STOPPED)")


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


# ---- start: AWSSupport-RecoverWorkSpace's route -------------------------------------------


def test_a_broken_stopped_workspace_starts_unhealthy_and_goes_on_to_the_reboot(
        action_env: Env, fleet: Fleet) -> None:
    workspace_id = workspace(fleet, "stopped-reboot")  # AutoStop, stopped in its boot loop
    assert action_env.run("workspaces.start", ctx(action_env, workspace_id), {}) == {
        "started": True, "healthy": False, "state": "UNHEALTHY"}
    assert action_env.run("workspaces.reboot", ctx(action_env, workspace_id), {}) == {
        "healthy": True, "state": "AVAILABLE"}


def test_a_resumed_start_waits_for_its_start_and_does_not_send_it_again(
        action_env: Env, fleet: Fleet) -> None:
    workspace_id = workspace(fleet, "stopped-reboot")
    action_env.client("workspaces").start_workspaces(
        StartWorkspaceRequests=[{"WorkspaceId": workspace_id}])  # ours, before a crash
    assert action_env.run("workspaces.start", ctx(action_env, workspace_id, sent=True), {}) == {
        "started": True, "healthy": False, "state": "UNHEALTHY"}
    assert action_env.runtime.count("StartWorkspaces") == 0


def test_a_start_resumed_after_it_settled_unhealthy_goes_on_to_the_reboot(
        action_env: Env, fleet: Fleet) -> None:
    """The start went out before the crash, and the WorkSpace came up UNHEALTHY (still
    broken) before the resume: that is the start's result. StartWorkspaces would be
    refused (not STOPPED), so the step neither sends it nor waits for a change."""
    workspace_id = workspace(fleet, "stopped-reboot")
    action_env.client("workspaces").start_workspaces(
        StartWorkspaceRequests=[{"WorkspaceId": workspace_id}])  # ours, before a crash
    action_env.clock.advance(3600)
    assert state(action_env, workspace_id) == "UNHEALTHY"
    started = action_env.clock.now()

    assert action_env.run("workspaces.start", ctx(action_env, workspace_id, sent=True), {}) == {
        "started": True, "healthy": False, "state": "UNHEALTHY"}
    assert action_env.runtime.count("StartWorkspaces") == 0
    assert action_env.clock.now() == started


# ---- resumed and reconciled steps: a restore or a rebuild is never sent twice -------------


def _sent_before_the_crash(env: Env, workspace_id: str, operation: str) -> None:
    """The step's call, sent before the run died; the WorkSpace then settles on its own."""
    client = env.client("workspaces")
    if operation == "RestoreWorkspace":
        client.restore_workspace(WorkspaceId=workspace_id)
    else:
        client.rebuild_workspaces(RebuildWorkspaceRequests=[{"WorkspaceId": workspace_id}])
    env.clock.advance(3600)


@pytest.mark.parametrize(("action", "operation", "fixed_by", "after"), [
    ("workspaces.restore", "RestoreWorkspace", "restore", "AVAILABLE"),
    ("workspaces.restore", "RestoreWorkspace", "rebuild", "ERROR"),
    ("workspaces.rebuild", "RebuildWorkspaces", "rebuild", "AVAILABLE"),
])
def test_a_resumed_destructive_step_takes_what_its_call_did(
        action_env: Env, fleet: Fleet, action: str, operation: str, fixed_by: str,
        after: str) -> None:
    workspace_id = workspace(fleet, fixed_by)
    _sent_before_the_crash(action_env, workspace_id, operation)
    assert state(action_env, workspace_id) == after
    assert action_env.run(action, ctx(action_env, workspace_id, sent=True), {}) == {
        "healthy": after == "AVAILABLE", "state": after}
    assert action_env.runtime.count(operation) == 0
    assert action_env.sandbox.api_call_counts()[("workspaces", operation)] == 1


def test_a_resumed_restore_still_under_way_is_waited_for(action_env: Env, fleet: Fleet) -> None:
    workspace_id = workspace(fleet, "restore")
    action_env.client("workspaces").restore_workspace(WorkspaceId=workspace_id)
    assert action_env.run("workspaces.restore", ctx(action_env, workspace_id, sent=True),
                          {}) == {"healthy": True, "state": "AVAILABLE"}
    assert action_env.sandbox.api_call_counts()[("workspaces", "RestoreWorkspace")] == 1


def test_a_reconciled_restore_that_shows_nothing_is_not_sent_again(
        action_env: Env, fleet: Fleet) -> None:
    """The journal says the step may have sent it; the WorkSpace shows no sign of it in
    two minutes: a repeat could throw away user data a second time, so it is not sent;
    its state is the restore's result (the rebuild follows)."""
    workspace_id = workspace(fleet, "restore")
    started = action_env.clock.now()
    assert action_env.run("workspaces.restore", ctx(action_env, workspace_id, sent=True),
                          {}) == {"healthy": False, "state": "UNHEALTHY"}
    assert action_env.runtime.count("RestoreWorkspace") == 0
    assert action_env.clock.now() - started >= 120


def test_a_rebuild_that_may_have_been_sent_and_shows_nothing_stops_saying_so(
        action_env: Env, fleet: Fleet) -> None:
    """Killed as the rebuild went out: it may never have reached AWS. Sent again it could
    throw user data away twice; taken as done, the WorkSpace would fail the verification
    ten minutes later without a word of why. The step fails now, saying what to check."""
    workspace_id = workspace(fleet, "rebuild")
    force_state(action_env, workspace_id, "ERROR")  # as the restore left it
    started = action_env.clock.now()
    with pytest.raises(StepFailed) as failed:
        action_env.run("workspaces.rebuild", ctx(action_env, workspace_id, sent=True), {})
    assert str(failed.value) == (
        f"RebuildWorkspaces may have been sent to {workspace_id} before the run was "
        "interrupted (or its reply was lost), but the WorkSpace shows no sign of it: still "
        "ERROR after 2 minutes, never REBUILDING. It is not sent again (a repeat could throw "
        "user data away twice): check the WorkSpace (AWS CloudTrail shows whether the "
        "request reached AWS) and send it by hand if it did not")
    assert action_env.runtime.count("RebuildWorkspaces") == 0
    assert state(action_env, workspace_id) == "ERROR"
    assert action_env.clock.now() - started >= 120


def test_a_reconciled_reboot_that_shows_nothing_is_sent_again(
        action_env: Env, fleet: Fleet) -> None:
    workspace_id = workspace(fleet, "reboot")
    assert action_env.run("workspaces.reboot", ctx(action_env, workspace_id, sent=True),
                          {}) == {"healthy": True, "state": "AVAILABLE"}
    assert action_env.runtime.count("RebootWorkspaces") == 1


def test_a_resumed_reboot_of_a_workspace_now_available_keeps_its_sessions(
        action_env: Env, fleet: Fleet) -> None:
    workspace_id = workspace(fleet, "reboot")
    action_env.client("workspaces").reboot_workspaces(
        RebootWorkspaceRequests=[{"WorkspaceId": workspace_id}])  # ours, before a crash
    action_env.clock.advance(600)
    assert action_env.run("workspaces.reboot", ctx(action_env, workspace_id, sent=True),
                          {}) == {"healthy": True, "state": "AVAILABLE"}
    assert action_env.runtime.count("RebootWorkspaces") == 0


# ---- a lost reply, and the request sent again: our own call in progress ------------------


class Resending(GateRuntime):
    """A client that sends a request again when its reply is lost (an SDK's own retries,
    or an operation that would be resent): the repeat meets the first one's effect."""

    def call(self, call: Call, region: str) -> Mapping[str, Any]:
        try:
            return super().call(call, region)
        except AwsError as error:
            if error.code != "InternalError":
                raise
            return super().call(call, region)


@pytest.mark.parametrize(("action", "operation", "fixed_by"), [
    ("workspaces.reboot", "RebootWorkspaces", "reboot"),
    ("workspaces.restore", "RestoreWorkspace", "restore"),
    ("workspaces.rebuild", "RebuildWorkspaces", "rebuild"),
])
def test_a_repeat_refused_because_of_our_lost_call_waits_for_it(
        action_env: Env, fleet: Fleet, action: str, operation: str, fixed_by: str) -> None:
    workspace_id = workspace(fleet, fixed_by)
    action_env.sandbox.lose_replies(operation, times=1)
    runtime = Resending(action_env.client, action_env.clock)
    step = action_env.context(Target("workspace", workspace_id, REGION), {}, runtime=runtime,
                              sent_before=lambda _operation: False)
    assert action_env.run(action, step, {}) == {"healthy": True, "state": "AVAILABLE"}
    calls = [c for c in action_env.sandbox.api_calls if c.operation == operation]
    assert [c.reply_lost for c in calls] == [True, False]  # the repeat was refused


def test_a_refusal_while_another_change_is_under_way_fails_with_its_state(
        action_env: Env, fleet: Fleet) -> None:
    workspace_id = workspace(fleet, "restore")

    def someone_reboots_it(_response: Mapping[str, Any]) -> None:  # after our first read
        del action_env.runtime.after["DescribeWorkspaces"]
        action_env.client("workspaces").reboot_workspaces(
            RebootWorkspaceRequests=[{"WorkspaceId": workspace_id}])

    action_env.runtime.after["DescribeWorkspaces"] = someone_reboots_it
    with pytest.raises(StepFailed) as failed:
        action_env.run("workspaces.restore", ctx(action_env, workspace_id), {})
    assert str(failed.value) == (
        f"RestoreWorkspace refused {workspace_id}: OperationNotSupportedException: The "
        f"WorkSpace {workspace_id} cannot be restored while it is REBOOTING. (it is REBOOTING)")
