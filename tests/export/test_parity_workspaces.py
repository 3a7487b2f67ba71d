"""workspaces.inspect/start/reboot/restore/rebuild/wait_state and workspaces-recover.yaml: the
same end on both engines, lost replies included.

Each runs locally and, exported, on moto's Step Functions, on a fresh sandbox fleet of the
same shape (tests/export/parity_support.py); the sandbox's WorkSpaces keep AWS's state
rules (remediate/sandbox/workspaces.py). What is compared, per WorkSpace's condition (what
repairs it, :data:`remediate.sandbox.fleet.WORKSPACE_FIXES`): its state at the end, and
how many times each state-changing request reached AWS; the run's statuses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from parity_support import Parity, both_engines, one_step
from sfn_support import NO_RETRIES, PLAYBOOKS, REGION, from_text, run_one_target

from remediate.actions.contract import Target
from remediate.actions.requests import StepFailed
from remediate.clock import VirtualClock
from remediate.executor.driver import SyncRuntime, run_action
from remediate.export.moto_engine import MotoStepFunctions
from remediate.sandbox import Fleet, FleetSpec, Sandbox

DATA_LOSS = frozenset({"workspace-restore-data-loss", "workspace-rebuild-data-loss"})
CHANGES = ("StartWorkspaces", "RebootWorkspaces", "RestoreWorkspace", "RebuildWorkspaces")
# One WorkSpace of each condition: reboot, restore, rebuild, stopped, stopped-reboot.
EVERY_KIND = FleetSpec(plain=0, workspaces=5, azs=1)
Seen = dict[str, tuple[str, dict[str, int]]]


def workspaces(fleet: Fleet) -> list[Target]:
    return [Target("workspace", w.workspace_id, w.region) for w in fleet.workspaces]


def seen(sb: Sandbox, fleet: Fleet) -> Seen:
    """Per condition: the WorkSpace's state, and the state-changing requests that named it
    (one whose reply was lost counts: it took effect; one AWS refused counts too)."""
    ids = [w.workspace_id for w in fleet.workspaces]
    found = sb.client("workspaces").describe_workspaces(WorkspaceIds=ids)["Workspaces"]
    state = {w["WorkspaceId"]: w["State"] for w in found}
    calls: dict[str, Counter[str]] = {wid: Counter() for wid in ids}
    for call in sb.api_calls:
        if call.operation in CHANGES:
            for wid in ids:
                if call.names(wid):
                    calls[wid][call.operation] += 1
    return {w.fixed_by: (state[w.workspace_id], dict(calls[w.workspace_id]))
            for w in fleet.workspaces}


def on_workspaces(text: str, *, spec: FleetSpec = EVERY_KIND,
                  prepare: Callable[[Sandbox, Fleet, VirtualClock], dict[str, Any]] | None = None,
                  accepted: frozenset[str] = frozenset(),
                  observe: Callable[[Sandbox, Fleet], Any] = seen) -> Parity:
    return both_engines(spec, text, observe, prepare=prepare, accepted=accepted,
                        targets=workspaces)


def step(action: str, params: dict[str, Any] | None = None, timeout: str | None = None) -> str:
    """A one-step playbook on the WorkSpaces; ``timeout``: the step's (locally 30 minutes
    by default, less than a rebuild takes; on Step Functions a step ends when its own
    waits give up)."""
    text = one_step(action, params, kind="workspace")
    if timeout is None:
        return text
    document = yaml.safe_load(text)
    document["steps"][0]["timeout"] = timeout
    return yaml.safe_dump(document, sort_keys=False)


def test_the_whole_playbook_heals_every_workspace_the_same_way() -> None:
    found = on_workspaces((PLAYBOOKS / "workspaces-recover.yaml").read_text(),
                          accepted=DATA_LOSS)

    assert found.local == found.stepfunctions == {
        "reboot": ("AVAILABLE", {"RebootWorkspaces": 1}),
        "restore": ("AVAILABLE", {"RebootWorkspaces": 1, "RestoreWorkspace": 1}),
        "rebuild": ("AVAILABLE", {"RebootWorkspaces": 1, "RestoreWorkspace": 1,
                                  "RebuildWorkspaces": 1}),
        "stopped": ("AVAILABLE", {"StartWorkspaces": 1}),
        "stopped-reboot": ("AVAILABLE", {"StartWorkspaces": 1, "RebootWorkspaces": 1}),
    }
    assert (found.local_statuses, found.sfn_status) == ({"succeeded": 5}, "SUCCEEDED")



def test_without_the_accepts_a_workspace_that_needs_a_restore_stops_before_it() -> None:
    found = on_workspaces((PLAYBOOKS / "workspaces-recover.yaml").read_text())

    assert found.local == found.stepfunctions == {
        "reboot": ("AVAILABLE", {"RebootWorkspaces": 1}),
        "restore": ("UNHEALTHY", {"RebootWorkspaces": 1}),
        "rebuild": ("UNHEALTHY", {"RebootWorkspaces": 1}),
        "stopped": ("AVAILABLE", {"StartWorkspaces": 1}),
        "stopped-reboot": ("AVAILABLE", {"StartWorkspaces": 1, "RebootWorkspaces": 1}),
    }
    assert found.local_statuses == {"succeeded": 3, "refused": 2}
    assert found.sfn_statuses == {"succeeded": 3, "failed": 2}  # failed with remediate.Refused


def test_the_refusal_before_the_restore_says_what_to_accept(
        sfn_sandbox: Sandbox, sfn_engine: MotoStepFunctions) -> None:
    fleet = sfn_sandbox.build_fleet(FleetSpec(plain=0, workspaces=2, azs=1))  # reboot, restore
    playbook, params = from_text((PLAYBOOKS / "workspaces-recover.yaml").read_text())
    restore = next(t for t, w in zip(workspaces(fleet), fleet.workspaces, strict=True)
                   if w.fixed_by == "restore")

    outcome = run_one_target(sfn_sandbox, sfn_engine, playbook, params, restore)

    # The local engine's words (tests/playbooks/test_builtin_playbooks.py).
    assert (outcome.status, outcome.error, outcome.cause) == (
        "FAILED", "remediate.Refused",
        "stopped before step restore: workspace-restore-data-loss not accepted (--accept "
        "workspace-restore-data-loss): restoring a WorkSpace loses up to 12 hours of user data "
        "(back to the last healthy snapshot)")
    assert sfn_sandbox.api_call_counts()[("workspaces", "RestoreWorkspace")] == 0

# ---- each action -------------------------------------------------------------------------


def test_inspect_learns_the_same_facts_but_tags_and_refuses_a_missing_workspace(
        sfn_sandbox: Sandbox, sfn_engine: MotoStepFunctions) -> None:
    fleet = sfn_sandbox.build_fleet(FleetSpec(plain=0, workspaces=2, azs=1))
    playbook, params = from_text(step("control.pause", {"duration": "0s"}))
    runtime = SyncRuntime(lambda service, region: sfn_sandbox.client(service, region, NO_RETRIES),
                          sfn_engine.clock)

    for target in workspaces(fleet):
        local = dict(run_action("workspaces.inspect", target, {}, runtime))
        outcome = run_one_target(sfn_sandbox, sfn_engine, playbook, params, target,
                                 run_id=f"inspect-{target.id}")
        assert outcome.status == "SUCCEEDED"
        # Tags are a mapping locally; a Step Functions iteration does not learn them.
        assert local.pop("tags") == {"incident": "crowdstrike-2024-07-19"}
        assert outcome.output["target"] == {**local, "tags": None}
        assert local["state"] in ("UNHEALTHY", "STOPPED") and local["running_mode"]

    gone = Target("workspace", "ws-000000000", REGION)
    outcome = run_one_target(sfn_sandbox, sfn_engine, playbook, params, gone, run_id="gone")
    assert (outcome.status, outcome.error, outcome.cause) == (
        "FAILED", "remediate.Refused", "inspection failed: WorkSpace ws-000000000 does not exist")
    with pytest.raises(StepFailed, match=r"^WorkSpace ws-000000000 does not exist$"):
        run_action("workspaces.inspect", gone, {}, runtime)


def test_start_starts_the_stopped_and_leaves_the_rest() -> None:
    found = on_workspaces(step("workspaces.start"))

    assert found.local == found.stepfunctions == {
        "reboot": ("UNHEALTHY", {}), "restore": ("UNHEALTHY", {}), "rebuild": ("UNHEALTHY", {}),
        "stopped": ("AVAILABLE", {"StartWorkspaces": 1}),
        # Stopped in its boot loop: it starts UNHEALTHY, for the reboot to follow.
        "stopped-reboot": ("UNHEALTHY", {"StartWorkspaces": 1}),
    }
    assert found.local_statuses == found.sfn_statuses == {"succeeded": 5}


def moto_workspace(workspace_id: str) -> Any:
    """moto's own record of a WorkSpace, for a state no API call leads to directly."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.workspaces.models import workspaces_backends

    return workspaces_backends[DEFAULT_ACCOUNT_ID][REGION].workspaces[workspace_id]


def always_on(sb: Sandbox, fleet: Fleet, clock: VirtualClock) -> dict[str, Any]:
    """The stopped WorkSpaces run in ALWAYS_ON mode: AWS refuses to start them ("You cannot
    start a WorkSpace unless it has a running mode of AutoStop or Manual", StartWorkspaces):
    a FailedRequests entry (moto has no ModifyWorkspaceProperties)."""
    for w in fleet.workspaces:
        if w.fixed_by.startswith("stopped"):
            moto_workspace(w.workspace_id).workspace_properties["RunningMode"] = "ALWAYS_ON"
    return {}


def test_a_start_aws_refuses_fails_the_target() -> None:
    found = on_workspaces(step("workspaces.start"), prepare=always_on)

    assert found.local == found.stepfunctions
    assert found.local["stopped"] == ("STOPPED", {"StartWorkspaces": 1})
    assert found.local_statuses == found.sfn_statuses == {"succeeded": 3, "failed": 2}


def test_reboot_heals_what_a_reboot_heals_and_refuses_a_stopped_workspace() -> None:
    found = on_workspaces(step("workspaces.reboot"))

    assert found.local == found.stepfunctions == {
        "reboot": ("AVAILABLE", {"RebootWorkspaces": 1}),
        "restore": ("UNHEALTHY", {"RebootWorkspaces": 1}),
        "rebuild": ("UNHEALTHY", {"RebootWorkspaces": 1}),
        "stopped": ("STOPPED", {}), "stopped-reboot": ("STOPPED", {}),
    }
    assert found.local_statuses == found.sfn_statuses == {"succeeded": 3, "failed": 2}


def stuck_rebooting(sb: Sandbox, fleet: Fleet, clock: VirtualClock) -> dict[str, Any]:
    """The WorkSpace a reboot heals is REBOOTING, and nothing will end it (stuck)."""
    (w,) = [w for w in fleet.workspaces if w.fixed_by == "reboot"]
    moto_workspace(w.workspace_id).state = "REBOOTING"
    sb.world.workspace(w.workspace_id).state_since = clock.now()
    return {}


def test_a_workspace_stuck_rebooting_is_rebooted_again_after_twenty_minutes() -> None:
    found = on_workspaces(step("workspaces.reboot"), spec=FleetSpec(
        plain=0, workspaces=1, azs=1), prepare=stuck_rebooting)

    assert found.local == found.stepfunctions == {
        "reboot": ("AVAILABLE", {"RebootWorkspaces": 1})}
    assert found.local_statuses == found.sfn_statuses == {"succeeded": 1}


def test_restore_heals_what_a_restore_heals_and_reports_the_rest_or_fails_it() -> None:
    broken = FleetSpec(plain=0, workspaces=3, azs=1)  # reboot, restore, rebuild
    found = on_workspaces(step("workspaces.restore"), spec=broken, accepted=DATA_LOSS)
    strict = on_workspaces(step("workspaces.restore", {"require_healthy": True}), spec=broken,
                           accepted=DATA_LOSS)

    assert found.local == found.stepfunctions == strict.local == strict.stepfunctions == {
        "reboot": ("AVAILABLE", {"RestoreWorkspace": 1}),
        "restore": ("AVAILABLE", {"RestoreWorkspace": 1}),
        "rebuild": ("ERROR", {"RestoreWorkspace": 1}),
    }
    assert found.local_statuses == found.sfn_statuses == {"succeeded": 3}
    assert strict.local_statuses == strict.sfn_statuses == {"succeeded": 2, "failed": 1}


def rebooted(sb: Sandbox, fleet: Fleet, clock: VirtualClock) -> dict[str, Any]:
    """Someone reboots every WorkSpace just before the run."""
    ids = [w.workspace_id for w in fleet.workspaces]
    sb.client("workspaces", REGION, NO_RETRIES).reboot_workspaces(
        RebootWorkspaceRequests=[{"WorkspaceId": wid} for wid in ids])
    return {}


def test_restore_refuses_a_rebooting_workspace_and_rebuild_takes_it() -> None:
    broken = FleetSpec(plain=0, workspaces=3, azs=1)
    restore = on_workspaces(step("workspaces.restore"), spec=broken, prepare=rebooted,
                            accepted=DATA_LOSS)
    rebuild = on_workspaces(step("workspaces.rebuild", timeout="75m"), spec=broken,
                            prepare=rebooted, accepted=DATA_LOSS)

    # Failed at once, the reboot still going on; no restore was sent.
    assert restore.local == restore.stepfunctions == {
        condition: ("REBOOTING", {"RebootWorkspaces": 1})
        for condition in ("reboot", "restore", "rebuild")}
    assert restore.local_statuses == restore.sfn_statuses == {"failed": 3}
    # A rebuild starts from REBOOTING, and heals every condition.
    assert rebuild.local == rebuild.stepfunctions == {
        condition: ("AVAILABLE", {"RebootWorkspaces": 1, "RebuildWorkspaces": 1})
        for condition in ("reboot", "restore", "rebuild")}
    assert rebuild.local_statuses == rebuild.sfn_statuses == {"succeeded": 3}


def started(sb: Sandbox, fleet: Fleet, clock: VirtualClock) -> dict[str, Any]:
    """Someone starts the stopped WorkSpaces just before the run."""
    sb.client("workspaces", REGION, NO_RETRIES).start_workspaces(StartWorkspaceRequests=[
        {"WorkspaceId": w.workspace_id} for w in fleet.workspaces
        if w.fixed_by.startswith("stopped")])
    return {}


def test_wait_state_waits_for_the_states_and_fails_on_the_bad_ones() -> None:
    found = on_workspaces(step("workspaces.wait_state", {
        "states": ["AVAILABLE"], "fail_on": ["UNHEALTHY"], "timeout": "10m"}), prepare=started)

    assert found.local == found.stepfunctions
    assert {condition: state for condition, (state, _) in found.local.items()} == {
        "reboot": "UNHEALTHY", "restore": "UNHEALTHY", "rebuild": "UNHEALTHY",
        "stopped": "AVAILABLE", "stopped-reboot": "UNHEALTHY"}
    assert found.local_statuses == found.sfn_statuses == {"succeeded": 1, "failed": 4}


# ---- lost replies ----------------------------------------------------------------------------


def losing(probability: float, seed: int) -> Callable[[Sandbox, Fleet, VirtualClock],
                                                       dict[str, Any]]:
    def lose(sb: Sandbox, fleet: Fleet, clock: VirtualClock) -> dict[str, Any]:
        for operation in CHANGES:
            sb.lose_replies(operation, probability, seed=seed)
        return {}

    return lose


@pytest.mark.parametrize(("probability", "seed"), [(1.0, 0), (0.5, 1)])
def test_lost_replies_end_the_same_and_nothing_is_restored_or_rebuilt_twice(
        probability: float, seed: int) -> None:
    lost: list[int] = []  # replies lost, locally then on Step Functions

    def observe(sb: Sandbox, fleet: Fleet) -> Seen:
        lost.append(sum(1 for call in sb.api_calls if call.reply_lost))
        return seen(sb, fleet)

    found = on_workspaces((PLAYBOOKS / "workspaces-recover.yaml").read_text(),
                          accepted=DATA_LOSS, prepare=losing(probability, seed),
                          observe=observe)

    assert all(lost) and len(lost) == 2, lost
    assert found.local == found.stepfunctions
    assert {condition: state for condition, (state, _) in found.local.items()} == {
        condition: "AVAILABLE" for condition in found.local}
    for _, calls in found.local.values():
        assert calls.get("RestoreWorkspace", 0) <= 1 and calls.get("RebuildWorkspaces", 0) <= 1
    assert found.local_statuses == found.sfn_statuses == {"succeeded": 5}
