from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from remediate.clock import VirtualClock
from remediate.sandbox import Fleet, FleetSpec, Sandbox

from .conftest import error_of


def _state(workspaces: Any, workspace_id: str) -> str:
    found = workspaces.describe_workspaces(WorkspaceIds=[workspace_id])["Workspaces"][0]
    return str(found["State"])


def _one(fleet: Fleet, fixed_by: str) -> str:
    return next(w.workspace_id for w in fleet.workspaces if w.fixed_by == fixed_by)


def test_fleet_workspaces_start_broken_or_stopped(workspaces: Any, fleet: Fleet) -> None:
    states = {w.fixed_by: _state(workspaces, w.workspace_id) for w in fleet.workspaces}
    assert states == {
        "reboot": "UNHEALTHY",
        "restore": "UNHEALTHY",
        "rebuild": "UNHEALTHY",
        "stopped": "STOPPED",
    }


def test_reboot_fixes_a_reboot_fixable_workspace(
    workspaces: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    target = _one(fleet, "reboot")
    answer = workspaces.reboot_workspaces(RebootWorkspaceRequests=[{"WorkspaceId": target}])
    assert answer["FailedRequests"] == []
    assert _state(workspaces, target) == "REBOOTING"
    clock.advance(299)
    assert _state(workspaces, target) == "REBOOTING"
    clock.advance(1)
    assert _state(workspaces, target) == "AVAILABLE"


def test_reboot_does_not_fix_a_restore_only_workspace(
    workspaces: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    target = _one(fleet, "restore")
    workspaces.reboot_workspaces(RebootWorkspaceRequests=[{"WorkspaceId": target}])
    clock.advance(300)
    assert _state(workspaces, target) == "UNHEALTHY"
    workspaces.restore_workspace(WorkspaceId=target)
    assert _state(workspaces, target) == "RESTORING"
    clock.advance(1200)
    assert _state(workspaces, target) == "AVAILABLE"


def test_restore_fails_where_only_rebuild_helps(
    workspaces: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    target = _one(fleet, "rebuild")
    workspaces.restore_workspace(WorkspaceId=target)
    clock.advance(1200)
    assert _state(workspaces, target) == "ERROR"
    answer = workspaces.rebuild_workspaces(RebuildWorkspaceRequests=[{"WorkspaceId": target}])
    assert answer["FailedRequests"] == []
    assert _state(workspaces, target) == "REBUILDING"
    clock.advance(2400)
    assert _state(workspaces, target) == "AVAILABLE"


def test_wrong_state_ids_come_back_in_failed_requests(workspaces: Any, fleet: Fleet) -> None:
    stopped = _one(fleet, "stopped")
    broken = _one(fleet, "reboot")
    answer = workspaces.reboot_workspaces(
        RebootWorkspaceRequests=[{"WorkspaceId": stopped}, {"WorkspaceId": broken}]
    )
    assert answer["FailedRequests"] == [
        {
            "WorkspaceId": stopped,
            "ErrorCode": "InvalidResourceStateException",
            "ErrorMessage": "The state of the resource is not valid for this operation.",
        }
    ]
    assert _state(workspaces, broken) == "REBOOTING"


def test_reboot_of_a_rebooting_workspace_waits_until_it_is_stuck(
    workspaces: Any, fleet: Fleet, clock: VirtualClock
) -> None:
    target = _one(fleet, "restore")
    workspaces.reboot_workspaces(RebootWorkspaceRequests=[{"WorkspaceId": target}])
    again = workspaces.reboot_workspaces(RebootWorkspaceRequests=[{"WorkspaceId": target}])
    assert [f["WorkspaceId"] for f in again["FailedRequests"]] == [target]
    fleet_ws = workspaces.describe_workspaces(WorkspaceIds=[target])["Workspaces"][0]
    assert fleet_ws["State"] == "REBOOTING"


def test_start_and_stop(workspaces: Any, fleet: Fleet, clock: VirtualClock) -> None:
    stopped = _one(fleet, "stopped")
    assert (
        workspaces.start_workspaces(StartWorkspaceRequests=[{"WorkspaceId": stopped}])[
            "FailedRequests"
        ]
        == []
    )
    assert _state(workspaces, stopped) == "STARTING"
    clock.advance(180)
    assert _state(workspaces, stopped) == "AVAILABLE"
    workspaces.stop_workspaces(StopWorkspaceRequests=[{"WorkspaceId": stopped}])
    assert _state(workspaces, stopped) == "STOPPING"
    clock.advance(120)
    assert _state(workspaces, stopped) == "STOPPED"


def test_restore_from_a_wrong_state_raises(workspaces: Any, fleet: Fleet) -> None:
    target = _one(fleet, "reboot")
    workspaces.reboot_workspaces(RebootWorkspaceRequests=[{"WorkspaceId": target}])
    with pytest.raises(ClientError) as excinfo:
        workspaces.restore_workspace(WorkspaceId=target)
    assert error_of(excinfo) == (
        "OperationNotSupportedException",
        f"The WorkSpace {target} cannot be restored while it is REBOOTING.",
    )


def test_batches_are_limited_like_aws(workspaces: Any, fleet: Fleet) -> None:
    ids = [{"WorkspaceId": f"ws-{n:09d}"} for n in range(26)]
    with pytest.raises(ClientError) as excinfo:
        workspaces.reboot_workspaces(RebootWorkspaceRequests=ids)
    assert error_of(excinfo)[0] == "ValidationException"
    with pytest.raises(ClientError) as excinfo:
        workspaces.rebuild_workspaces(RebuildWorkspaceRequests=ids[:2])
    assert error_of(excinfo)[0] == "ValidationException"
    unknown = workspaces.reboot_workspaces(RebootWorkspaceRequests=ids[:1])
    assert unknown["FailedRequests"] == [{
        "WorkspaceId": "ws-000000000", "ErrorCode": "ResourceNotFoundException",
        "ErrorMessage": "The resource could not be found."}]


def test_a_broken_workspace_stopped_by_autostop_starts_unhealthy(
        sandbox: Sandbox, workspaces: Any, clock: VirtualClock) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=0, workspaces=5, azs=1))
    target = _one(fleet, "stopped-reboot")
    assert _state(workspaces, target) == "STOPPED"
    workspaces.start_workspaces(StartWorkspaceRequests=[{"WorkspaceId": target}])
    clock.advance(180)
    assert _state(workspaces, target) == "UNHEALTHY"  # the boot loop again, not AVAILABLE
    workspaces.reboot_workspaces(RebootWorkspaceRequests=[{"WorkspaceId": target}])
    clock.advance(300)
    assert _state(workspaces, target) == "AVAILABLE"


def test_start_and_stop_need_autostop_or_manual(workspaces: Any, fleet: Fleet) -> None:
    always_on = _one(fleet, "reboot")
    refused = {"WorkspaceId": always_on, "ErrorCode": "OperationNotSupportedException",
               "ErrorMessage": "This operation is not supported."}
    answer = workspaces.stop_workspaces(StopWorkspaceRequests=[{"WorkspaceId": always_on}])
    assert answer["FailedRequests"] == [refused]
    answer = workspaces.start_workspaces(StartWorkspaceRequests=[{"WorkspaceId": always_on}])
    assert answer["FailedRequests"] == [refused]
    assert _state(workspaces, always_on) == "UNHEALTHY"


def test_a_reboot_is_repeated_only_after_over_twenty_minutes_rebooting(
        sandbox: Sandbox, workspaces: Any, fleet: Fleet, clock: VirtualClock) -> None:
    target = _one(fleet, "reboot")
    workspaces.reboot_workspaces(RebootWorkspaceRequests=[{"WorkspaceId": target}])
    sandbox.world.timeline.cancel(("workspace", target))  # stuck: nothing ends this reboot
    clock.advance(1200)
    again = workspaces.reboot_workspaces(RebootWorkspaceRequests=[{"WorkspaceId": target}])
    assert [f["ErrorCode"] for f in again["FailedRequests"]] == ["InvalidResourceStateException"]
    clock.advance(1)
    again = workspaces.reboot_workspaces(RebootWorkspaceRequests=[{"WorkspaceId": target}])
    assert again["FailedRequests"] == []
    clock.advance(300)
    assert _state(workspaces, target) == "AVAILABLE"


def test_a_workspaces_call_can_take_effect_and_lose_its_reply(
        sandbox: Sandbox, workspaces: Any, fleet: Fleet) -> None:
    target = _one(fleet, "rebuild")
    sandbox.lose_replies("RebuildWorkspaces", times=1)
    with pytest.raises(ClientError) as excinfo:
        workspaces.rebuild_workspaces(RebuildWorkspaceRequests=[{"WorkspaceId": target}])
    assert error_of(excinfo)[0] == "InternalError"
    assert _state(workspaces, target) == "REBUILDING"  # it took effect
    again = workspaces.rebuild_workspaces(RebuildWorkspaceRequests=[{"WorkspaceId": target}])
    assert [f["ErrorCode"] for f in again["FailedRequests"]] == ["InvalidResourceStateException"]
    calls = [c for c in sandbox.api_calls if c.operation == "RebuildWorkspaces"]
    assert [c.reply_lost for c in calls] == [True, False]
    # Asked twice, rebuilt once: the sandbox keeps the changes that took effect.
    assert sandbox.world.workspace(target).changes == ["RebuildWorkspaces"]

