"""The built-in playbooks, exported and executed by moto against the sandbox fleet,
end in the same state as a local run of the same playbook on the same fleet."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sfn_support import (
    FIXED,
    NO_RETRIES,
    UNTOUCHED_BROKEN,
    EndState,
    backups,
    builtin,
    ec2_targets,
    end_state,
    item_counts,
    rescue_instances,
    run_playbook,
)

from remediate.clock import VirtualClock
from remediate.executor.engine import Executor
from remediate.executor.events import EventBus
from remediate.export import compile_playbook, role_policy
from remediate.export.moto_engine import MotoStepFunctions
from remediate.journal import Journal
from remediate.language.model import Playbook
from remediate.sandbox import Durations, FleetSpec, Sandbox


def end_states(sb: Sandbox, fleet: Any) -> Counter[tuple[str, EndState]]:
    return Counter((t.kind, end_state(sb, t)) for t in fleet.targets)


def clean_snapshot(sb: Sandbox, clock: VirtualClock) -> str:
    """A completed snapshot of a volume without the channel file (taken before the incident)."""
    ec2 = sb.client("ec2", "us-east-1", NO_RETRIES)
    volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=30)["VolumeId"]
    snapshot = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    clock.advance(sb.durations.snapshot)
    return str(snapshot)


def local_run(spec: FleetSpec, playbook: Playbook, params: dict[str, Any],
              snapshot_param: str | None = None,
              accepted: frozenset[str] = frozenset()) -> Counter[tuple[str, EndState]]:
    """The same playbook run by the local executor on a fresh fleet of the same shape."""
    clock = VirtualClock()
    with Sandbox(clock=clock, durations=Durations()) as sb:
        fleet = sb.build_fleet(spec)
        if snapshot_param:
            params = {**params, snapshot_param: clean_snapshot(sb, clock)}
        Executor(playbook, ec2_targets(fleet.targets),
                 clients=lambda _a, region, service: sb.client(service, region, NO_RETRIES),
                 clock=clock, bus=EventBus(), journal=Journal.memory(), run_id="local-1",
                 params=params, accepted=accepted).run()
        assert rescue_instances(sb) == []
        return end_states(sb, fleet)


def test_reboot_first_fixes_the_reboot_fixable_and_fails_the_rest_like_a_local_run() -> None:
    spec = FleetSpec(plain=1, reboot_fixable=3, azs=2)
    playbook, params = builtin("ec2-reboot-first.yaml")
    local = local_run(spec, playbook, params)
    clock = VirtualClock()
    with MotoStepFunctions(clock) as engine, Sandbox(clock=clock, durations=Durations()) as sb:
        fleet = sb.build_fleet(spec)

        outcome = run_playbook(sb, engine, playbook, params, ec2_targets(fleet.targets))

        # max_failure_percent is 100: the plain target failing verify does not fail the run.
        assert outcome.status == "SUCCEEDED"
        found = end_states(sb, fleet)
        # The plain target's iteration failed; the Map Runs count it.
        assert item_counts(sb, outcome) == Counter({"succeeded": 3, "failed": 1})
    assert found == Counter({("reboot_fixable", FIXED): 3, ("plain", UNTOUCHED_BROKEN): 1})
    assert found == local


def test_offline_repair_swaps_every_root_volume_and_leaves_no_rescue_instance() -> None:
    spec = FleetSpec(plain=3, azs=2)
    # The default rescue image, resolve:ssm:, which each iteration reads (GetParameter).
    playbook, params = builtin("ec2-offline-repair.yaml")
    local = local_run(spec, playbook, params)
    clock = VirtualClock()
    with MotoStepFunctions(clock) as engine, Sandbox(clock=clock, durations=Durations()) as sb:
        fleet = sb.build_fleet(spec)

        outcome = run_playbook(sb, engine, playbook, params, ec2_targets(fleet.targets),
                               run_id="repair-1")

        assert outcome.status == "SUCCEEDED"
        found = end_states(sb, fleet)
        assert all(len(backups(sb, t)) == 1 for t in fleet.targets)
        assert rescue_instances(sb) == []
        calls = sb.api_call_counts()
    assert calls[("ec2", "RunInstances")] == 3  # one rescue instance per target
    assert calls[("ssm", "GetParameter")] == 3
    assert calls[("ec2", "TerminateInstances")] == 3
    assert found == Counter({("plain", FIXED): 3})
    assert found == local


def test_replace_root_volume_boots_every_target_from_the_clean_snapshot() -> None:
    spec = FleetSpec(plain=2, azs=1)
    playbook, params = builtin("ec2-replace-root-volume.yaml", snapshot_id="snap-00000000")
    # Locally the data-loss finding must be accepted; the exported machine leaves that
    # judgement to the command that starts it (pre-flight runs before the execution).
    local = local_run(spec, playbook, params, snapshot_param="snapshot_id",
                      accepted=frozenset({"root-replacement-data-loss"}))
    clock = VirtualClock()
    with MotoStepFunctions(clock) as engine, Sandbox(clock=clock, durations=Durations()) as sb:
        fleet = sb.build_fleet(spec)
        params["snapshot_id"] = clean_snapshot(sb, clock)

        outcome = run_playbook(sb, engine, playbook, params, ec2_targets(fleet.targets))

        assert outcome.status == "SUCCEEDED"
        assert item_counts(sb, outcome) == Counter({"succeeded": 2})
        found = end_states(sb, fleet)
        assert all(len(backups(sb, t)) == 1 for t in fleet.targets)
    # Running and healthy on a new root; the old (broken) root is kept, not deleted.
    assert found == Counter({("plain", EndState("running", False, True, True)): 2})
    assert found == local


def test_the_offline_repair_runs_under_the_role_policy_deploy_prints() -> None:
    """Every call the state machine makes is judged under the role's policy (the sandbox
    as IAM): the narrowed policy is enough, nothing is refused."""
    spec = FleetSpec(plain=2, azs=1)
    playbook, params = builtin("ec2-offline-repair.yaml")
    definition = compile_playbook(playbook, params)
    clock = VirtualClock()
    with MotoStepFunctions(clock) as engine, Sandbox(clock=clock, durations=Durations()) as sb:
        fleet = sb.build_fleet(spec)
        role = role_policy(playbook, definition)
        # The test's own calls (creating and following the machine, reading the end state).
        harness = {"Sid": "Harness", "Effect": "Allow",
                   "Action": ["states:*", "ec2:Describe*"], "Resource": "*"}
        sb.enforce_policy({**role, "Statement": [harness, *role["Statement"]]})

        outcome = run_playbook(sb, engine, playbook, params, ec2_targets(fleet.targets),
                               run_id="repair-1")

        assert outcome.status == "SUCCEEDED"
        assert [f"{j.action} {j.resource}" for j in sb.authorizations if not j.allowed] == []
        changed = {j.action for j in sb.authorizations
                   if j.action.split(":")[0] in ("ec2", "ssm") and j.allowed}
        assert {"ec2:StopInstances", "ec2:AttachVolume", "ec2:RunInstances",
                "ssm:SendCommand", "ec2:TerminateInstances"} <= changed
        assert end_states(sb, fleet) == Counter({("plain", FIXED): 2})
