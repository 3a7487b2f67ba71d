"""A second operator: runs with their own journals, on this host or another, never work on
one target at once (the host registry of live runs, the claim tag in AWS)."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from executor_support import REGION, ec2_targets, events_of, playbook, step

from remediate.actions.contract import Target
from remediate.aws.apis import Bucket
from remediate.claims.registry import STATE_DIR_VARIABLE
from remediate.claims.tag import CLAIM_TAG, Claim, safe
from remediate.clock import VirtualClock
from remediate.executor.claiming import SETTLE, TTL
from remediate.executor.engine import Executor
from remediate.executor.events import Event, EventBus, Notice, StepStarted
from remediate.executor.guards import BatchResult
from remediate.executor.result import RunResult
from remediate.executor.resume import resume
from remediate.journal import Journal
from remediate.language.model import BatchSize, Guards, Playbook, TargetSelector
from remediate.sandbox import FleetSpec, Sandbox

CANARY_FIRST = Guards(batches=(BatchSize(count=1), BatchSize(percent=100)),
                      pause_after_canary=True)


class Crash(BaseException):
    """The process dies (as if killed) in the middle of its work."""


def snapshot_stop_start(guards: Guards | None = None) -> Playbook:
    """Mutating steps of the volume swap's first half, undone by the last."""
    return playbook(step("snapshot", "ec2.snapshot_root"), step("stop", "ec2.stop"),
                    step("start", "ec2.start"), guards=guards)


def key(instance_id: str) -> str:
    return f"default/{REGION}/{instance_id}"


def claim_of(sandbox: Sandbox, instance_id: str) -> str | None:
    ec2 = sandbox.client("ec2", REGION)
    found = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [instance_id]},
                                       {"Name": "key", "Values": [CLAIM_TAG]}])["Tags"]
    return found[0]["Value"] if found else None


def touched(calls: list[Any], *instance_ids: str) -> list[tuple[str, str]]:
    """Mutating calls that named any of ``instance_ids`` (operation, instance)."""
    return [(c.operation, i) for c in calls if c.mutating for i in instance_ids if c.names(i)]


def run(pb: Playbook, ids: list[str], clients: Any, clock: VirtualClock, journal: Journal,
        run_id: str, events: list[Event] | None = None, **options: Any) -> RunResult:
    bus = EventBus()
    if events is not None:
        bus.subscribe(events.append)
    return Executor(pb, ec2_targets(ids), clients=clients, clock=clock, bus=bus,
                    journal=journal, run_id=run_id, **options).run()


def while_paused(action: Callable[[], None]) -> Callable[[BatchResult], bool]:
    """A confirmation after the canary batch that does ``action`` first (another operator
    working while this run is alive, its other targets claimed and not started)."""
    def confirm(_batch: BatchResult) -> bool:
        action()
        return True

    return confirm


def crashing(clients: Any, operation: str) -> Any:
    """Clients whose first ``operation`` call kills the run before it is sent."""
    def lookup(account: str, region: str, service: str) -> Any:
        client = clients(account, region, service)

        class Dying:
            def __getattr__(self, name: str) -> Any:
                if name == operation:
                    raise Crash(f"killed while sending {operation}")
                return getattr(client, name)

        return Dying()

    return lookup


def after_create_tags(clients: Any, hook: Callable[[dict[str, Any]], None]) -> Any:
    """Clients whose every CreateTags, once AWS has done it, is followed by ``hook(params)``
    (what another run does meanwhile)."""
    def lookup(account: str, region: str, service: str) -> Any:
        client = clients(account, region, service)

        class Hooked:
            def __getattr__(self, name: str) -> Any:
                method = getattr(client, name)
                if name != "create_tags":
                    return method

                def create_tags(**params: Any) -> Any:
                    answer = method(**params)
                    hook(params)
                    return answer

                return create_tags

        return Hooked()

    return lookup


def test_a_second_run_with_another_journal_refuses_the_first_runs_live_targets(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, tmp_path: Path) -> None:
    a, b, c, d = sandbox.build_fleet(FleetSpec(plain=4, azs=1)).instance_ids()
    first = Journal(tmp_path / "first.sqlite")
    second: dict[str, Any] = {}

    def second_operator() -> None:
        second["claims"] = {i: claim_of(sandbox, i) for i in (a, b, c, d)}
        sandbox.reset_api_calls()
        second["result"] = run(snapshot_stop_start(), [b, c, d], clients, clock,
                               Journal(tmp_path / "second.sqlite"), "run-2")
        second["calls"] = sandbox.api_calls

    result = run(snapshot_stop_start(CANARY_FIRST), [a, b, c], clients, clock, first, "run-1",
                 confirm=while_paused(second_operator))

    started = first.run("run-1").started_at
    held = (f"locked by run run-1 (pid {os.getpid()} on {socket.gethostname()}, started "
            f"{started}) (journal {tmp_path / 'first.sqlite'})")
    assert second["result"].statuses == {key(b): "refused", key(c): "refused",
                                         key(d): "succeeded"}
    assert second["result"].errors == {key(b): f"{key(b)} is {held}",
                                       key(c): f"{key(c)} is {held}"}
    # Not one mutating call of the second run named the first run's targets; it did its own.
    assert touched(second["calls"], b, c) == []
    assert {op for op, _ in touched(second["calls"], d)} >= {
        "CreateSnapshot", "StopInstances", "StartInstances"}
    # While the first run was alive, its targets carried its claim.
    assert all(second["claims"][i].startswith("run=run-1 ") for i in (a, b, c))
    assert second["claims"][d] is None
    assert result.summary == {"succeeded": 3}
    assert {i: claim_of(sandbox, i) for i in (a, b, c, d)} == dict.fromkeys((a, b, c, d))


def test_a_run_on_another_host_sees_the_claim_tag_and_refuses(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, c, d = sandbox.build_fleet(FleetSpec(plain=4, azs=1)).instance_ids()
    here = socket.gethostname()
    second: dict[str, Any] = {}

    def operator_on_another_host() -> None:
        monkeypatch.setattr(socket, "gethostname", lambda: "bastion-2")
        monkeypatch.setenv(STATE_DIR_VARIABLE, str(tmp_path / "bastion-2"))
        second["claim"] = claim_of(sandbox, b)
        sandbox.reset_api_calls()
        second["result"] = run(snapshot_stop_start(), [b, c, d], clients, clock,
                               Journal(tmp_path / "second.sqlite"), "run-2")
        second["calls"] = sandbox.api_calls
        monkeypatch.undo()

    result = run(snapshot_stop_start(CANARY_FIRST), [a, b, c], clients, clock,
                 Journal(tmp_path / "first.sqlite"), "run-1",
                 confirm=while_paused(operator_on_another_host))

    match = re.fullmatch(rf"run=run-1 host={re.escape(safe(here))} pid={os.getpid()} "
                         r"since=2024-07-19T05:30:00Z until=(\S+)", second["claim"])
    assert match, second["claim"]
    held = (f"locked by run run-1 (pid {os.getpid()} on {safe(here)}, started "
            f"2024-07-19T05:30:00Z) (claim tag {CLAIM_TAG} on the target, until "
            f"{match[1]})")
    assert second["result"].errors == {key(b): f"{key(b)} is {held}",
                                       key(c): f"{key(c)} is {held}"}
    assert second["result"].statuses[key(d)] == "succeeded"
    assert touched(second["calls"], b, c) == []
    assert result.summary == {"succeeded": 3}
    assert {i: claim_of(sandbox, i) for i in (a, b, c, d)} == dict.fromkeys((a, b, c, d))


def test_an_expired_claim_of_a_crashed_run_is_taken_over_with_a_warning(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = sandbox.build_fleet(FleetSpec(plain=2, azs=1)).instance_ids()
    pb = snapshot_stop_start()
    with pytest.raises(Crash):
        run(pb, [a, b], crashing(clients, "stop_instances"), clock,
            Journal(tmp_path / "first.sqlite"), "run-1")
    left = {i: claim_of(sandbox, i) for i in (a, b)}
    assert all(v is not None and v.startswith("run=run-1 ") for v in left.values())
    until = {i: Claim.parse(v).until.strftime("%Y-%m-%dT%H:%M:%SZ")
             for i, v in left.items() if v}
    # Another host: it cannot see whether run-1's process lives; its claims hold until
    # they expire.
    monkeypatch.setattr(socket, "gethostname", lambda: "bastion-2")
    monkeypatch.setenv(STATE_DIR_VARIABLE, str(tmp_path / "bastion-2"))

    early = run(pb, [a, b], clients, clock, Journal(tmp_path / "second.sqlite"), "run-2")
    clock.advance(TTL)
    events: list[Event] = []
    late = run(pb, [a, b], clients, clock, Journal(tmp_path / "third.sqlite"), "run-3",
               events)

    assert early.summary == {"refused": 2}
    assert late.summary == {"succeeded": 2}
    warnings = [e.message for e in events_of(events, Notice) if e.level == "warning"]
    host = Claim.parse(left[a] or "").host
    assert warnings == [f"{key(i)}: took over the claim of run run-1 (pid {os.getpid()} on "
                        f"{host}, expired {until[i]})" for i in (a, b)]
    assert {i: claim_of(sandbox, i) for i in (a, b)} == {a: None, b: None}


def test_resume_takes_the_runs_own_claims_back(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, tmp_path: Path) -> None:
    a, b = sandbox.build_fleet(FleetSpec(plain=2, azs=1)).instance_ids()
    pb = snapshot_stop_start()
    with pytest.raises(Crash):
        run(pb, [a, b], crashing(clients, "stop_instances"), clock,
            Journal(tmp_path / "run.sqlite"), "run-1")
    assert all((claim_of(sandbox, i) or "").startswith("run=run-1 ") for i in (a, b))
    events: list[Event] = []
    bus = EventBus()
    bus.subscribe(events.append)

    # At once, in this very process (whose pid is alive): the claims are the run's own.
    result = resume(tmp_path / "run.sqlite", pb, clients=clients, clock=clock, bus=bus)

    assert result.summary == {"succeeded": 2}
    assert [e.message for e in events_of(events, Notice)] == []
    assert {i: claim_of(sandbox, i) for i in (a, b)} == {a: None, b: None}


def test_a_rival_claim_written_at_the_same_moment_wins_and_this_run_refuses(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, tmp_path: Path) -> None:
    a, b = sandbox.build_fleet(FleetSpec(plain=2, azs=1)).instance_ids()
    rival = Claim.of("run-rival", "bastion-9", 77, clock.wall(),
                     clock.wall().replace(hour=6)).text()

    ec2 = sandbox.client("ec2", REGION)

    def rival_writes(params: dict[str, Any]) -> None:
        """A run on another host, which also found b free, writes its claim on b right
        after this run's (tags have no conditional write: both succeed)."""
        if b in params["Resources"] and params["Tags"][0]["Key"] == CLAIM_TAG:
            ec2.create_tags(Resources=[b], Tags=[{"Key": CLAIM_TAG, "Value": rival}])

    result = run(snapshot_stop_start(), [a, b], after_create_tags(clients, rival_writes), clock,
                 Journal(tmp_path / "j.sqlite"), "run-1")

    assert result.statuses == {key(a): "succeeded", key(b): "refused"}
    assert result.errors[key(b)] == (
        f"{key(b)} is locked by run run-rival (pid 77 on bastion-9, started "
        f"2024-07-19T05:30:00Z) (claim tag {CLAIM_TAG} on the target, until "
        "2024-07-19T06:30:00Z), written at the same time as this run's")
    # b was only ever claimed: no snapshot, stop or start; the rival's claim stands.
    assert [op for op, _ in touched(sandbox.api_calls, b)] == ["CreateTags", "CreateTags"]
    assert claim_of(sandbox, b) == rival


def test_a_claim_written_too_long_after_its_check_is_not_trusted(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, tmp_path: Path) -> None:
    (a,) = sandbox.build_fleet(FleetSpec(plain=1, azs=1)).instance_ids()
    # Throttled once: the bucket is drained and refills one token in 10 s.
    sandbox.fail("CreateTags", "RequestLimitExceeded", times=1)

    result = run(snapshot_stop_start(), [a], clients, clock, Journal(tmp_path / "j.sqlite"),
                 "run-1", rate_limits={"ec2.create-tags": Bucket(1, 0.1)})

    assert result.statuses == {key(a): "refused"}
    assert re.fullmatch(
        rf"{key(a)}: its claim tag {CLAIM_TAG} waited 1\ds to be written after it was read "
        rf"\(throttled; more than {SETTLE / 2:g}s\): another run may have claimed it "
        "meanwhile; refused",
        result.errors[key(a)]), result.errors[key(a)]
    assert [op for op, _ in touched(sandbox.api_calls, a)] == [
        "CreateTags", "CreateTags", "DeleteTags"]  # throttled, written, removed
    assert claim_of(sandbox, a) is None


def test_claims_are_renewed_and_a_target_whose_claim_was_taken_stops(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, tmp_path: Path) -> None:
    a, b = sandbox.build_fleet(FleetSpec(plain=2, azs=1)).instance_ids()
    taker = Claim.of("run-taker", "bastion-9", 77, clock.wall(),
                     clock.wall().replace(hour=8)).text()
    pb = playbook(step("mark", "test.tag", {"key": "first"}),
                  step("wait", "control.pause", {"duration": "400s"}),
                  step("again", "test.tag", {"key": "second"}))
    ec2 = sandbox.client("ec2", REGION)

    def taken_after_first(params: dict[str, Any]) -> None:
        """After the first step, another run writes its claim on b (as one would once
        this run's claim had expired)."""
        if params["Tags"][0]["Key"] == "first":
            ec2.create_tags(Resources=[b], Tags=[{"Key": CLAIM_TAG, "Value": taker}])

    events: list[Event] = []
    journal = Journal(tmp_path / "j.sqlite")
    result = run(pb, [a, b], after_create_tags(clients, taken_after_first), clock, journal,
                 "run-1", events,
                 inspect_actions={"ec2-instance": "test.inspect"})

    lost = ("lost its claim to run run-taker (pid 77 on bastion-9, until "
            "2024-07-19T08:30:00Z)")
    assert result.statuses == {key(a): "succeeded", key(b): "interrupted"}
    assert result.errors[key(b)] == f"{lost}; stopped before step again, not rolled back"
    assert [e.message for e in events_of(events, Notice)] == [
        f"{key(b)}: {lost}; no further step starts on it"]
    renewed = [c for c in journal.calls("run-1") if c.step_id == "renew"]
    assert [(c.target_key, c.operation) for c in renewed] == [(f"claim:{key(a)}", "CreateTags")]
    assert claim_of(sandbox, a) is None and claim_of(sandbox, b) == taker


def test_a_dry_run_writes_no_claim_and_reports_targets_a_live_run_holds(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, tmp_path: Path) -> None:
    a, b, c = sandbox.build_fleet(FleetSpec(plain=3, azs=1)).instance_ids()
    ec2 = sandbox.client("ec2", REGION)
    live = Claim.of("run-9", "bastion-9", 77, clock.wall(), clock.wall().replace(hour=6))
    gone = Claim.of("run-8", "bastion-8", 88, clock.wall(), clock.wall().replace(hour=5,
                                                                              minute=0))
    ec2.create_tags(Resources=[a], Tags=[{"Key": CLAIM_TAG, "Value": live.text()}])
    ec2.create_tags(Resources=[b], Tags=[{"Key": CLAIM_TAG, "Value": gone.text()}])
    sandbox.reset_api_calls()
    events: list[Event] = []

    result = run(snapshot_stop_start(), [a, b, c], clients, clock, Journal.memory(), "plan",
                 events, dry_run=True)

    assert result.statuses == {key(a): "refused", key(b): "planned", key(c): "planned"}
    assert result.errors[key(a)] == (
        f"{key(a)} is locked by run run-9 (pid 77 on bastion-9, started 2024-07-19T05:30:00Z) "
        f"(claim tag {CLAIM_TAG} on the target, until 2024-07-19T06:30:00Z)")
    assert [e.message for e in events_of(events, Notice) if e.level == "info"] == [
        f"{key(b)}: a run would take over the claim of run run-8 (pid 88 on bastion-8, "
        "expired 2024-07-19T05:00:00Z)"]
    assert [call for call in sandbox.api_calls if call.mutating] == []


def test_workspaces_are_claimed_one_call_each_and_a_claimed_one_is_refused(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, tmp_path: Path) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=0, workspaces=2, workspace_mix=("reboot",),
                                          azs=1))
    held, free = (w.workspace_id for w in fleet.workspaces)
    workspaces = sandbox.client("workspaces", REGION)
    live = Claim.of("run-9", "bastion-9", 77, clock.wall(), clock.wall().replace(hour=6)).text()
    workspaces.create_tags(ResourceId=held, Tags=[{"Key": CLAIM_TAG, "Value": live}])
    sandbox.reset_api_calls()
    pb = playbook(step("reboot", "workspaces.reboot"))
    pb = Playbook(**{**pb.__dict__, "targets": TargetSelector(kind="workspace")})
    journal = Journal(tmp_path / "j.sqlite")
    result = Executor(pb, [Target("workspace", w, REGION) for w in (held, free)],
                      clients=clients, clock=clock, bus=EventBus(),
                      journal=journal, run_id="run-1").run()

    assert result.statuses == {key(held): "refused", key(free): "succeeded"}
    assert result.errors[key(held)] == (
        f"{key(held)} is locked by run run-9 (pid 77 on bastion-9, started "
        f"2024-07-19T05:30:00Z) (claim tag {CLAIM_TAG} on the target, until "
        "2024-07-19T06:30:00Z)")
    assert touched(sandbox.api_calls, held) == []
    # Claimed (renewed while the reboot went on) and released: one WorkSpace a call.
    assert {op for op, _ in touched(sandbox.api_calls, free)} == {
        "CreateTags", "DeleteTags", "RebootWorkspaces"}
    claimed = [c.params["Tags"][0]["Value"] for c in journal.calls("run-1", f"claim:{key(free)}")
               if c.operation == "CreateTags"]
    assert claimed and all(v.startswith("run=run-1 ") for v in claimed)
    after = {w: [t for t in workspaces.describe_tags(ResourceId=w)["TagList"]
                 if t["Key"] == CLAIM_TAG] for w in (held, free)}
    assert after == {held: [{"Key": CLAIM_TAG, "Value": live}], free: []}


def test_after_ctrl_c_twice_a_target_left_mid_way_keeps_its_claim_until_resume(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, tmp_path: Path) -> None:
    a, b = sandbox.build_fleet(FleetSpec(plain=2, azs=1)).instance_ids()
    pb = playbook(step("snapshot", "ec2.snapshot_root"), step("stop", "ec2.stop"),
                  step("wait", "control.pause", {"duration": "60s"}),
                  step("start", "ec2.start"), concurrency=1)
    journal = Journal(tmp_path / "run.sqlite")
    bus = EventBus()
    executor = Executor(pb, ec2_targets([a, b]), clients=clients, clock=clock, bus=bus,
                        journal=journal, run_id="run-1")

    def ctrl_c_twice(event: Event) -> None:
        if isinstance(event, StepStarted) and event.step_id == "wait":
            executor.request_stop()
            executor.request_stop()

    bus.subscribe(ctrl_c_twice)
    result = executor.run()

    assert result.statuses == {key(a): "interrupted", key(b): "interrupted"}
    # A second Ctrl-C sends nothing more: both claims stay (until they expire, or resume),
    # a's on a target stopped mid-way, b's on one never started.
    assert (claim_of(sandbox, a) or "").startswith("run=run-1 ")
    assert (claim_of(sandbox, b) or "").startswith("run=run-1 ")

    resumed = resume(journal, pb, clients=clients, clock=clock, bus=EventBus())

    assert resumed.summary == {"succeeded": 2}
    assert {i: claim_of(sandbox, i) for i in (a, b)} == {a: None, b: None}


def killed_removing_its_claims(sandbox: Sandbox, clients: Any, clock: VirtualClock,
                               journal: Journal) -> tuple[str, str]:
    """Run-1 on two targets, killed as it removes its claims: both targets are fixed, both
    claims stay."""
    a, b = sandbox.build_fleet(FleetSpec(plain=2, azs=1)).instance_ids()
    with pytest.raises(Crash):
        run(snapshot_stop_start(), [a, b], crashing(clients, "delete_tags"), clock, journal,
            "run-1")
    return a, b


def test_resume_removes_the_claims_a_killed_process_left_on_targets_it_had_finished(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "run.sqlite")
    a, b = killed_removing_its_claims(sandbox, clients, clock, journal)
    pb = snapshot_stop_start()
    assert {r.status for r in journal.targets("run-1").values()} == {"succeeded"}
    assert all((claim_of(sandbox, i) or "").startswith("run=run-1 ") for i in (a, b))
    sandbox.reset_api_calls()

    result = resume(journal, pb, clients=clients, clock=clock, bus=EventBus())

    assert result.summary == {"succeeded": 2}
    assert {i: claim_of(sandbox, i) for i in (a, b)} == {a: None, b: None}
    # Read first (only this run's claim goes), and nothing else touched.
    assert [c.operation for c in sandbox.api_calls if c.mutating] == ["DeleteTags"]


def test_resume_leaves_a_claim_another_run_took_on_a_finished_target(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "run.sqlite")
    a, b = killed_removing_its_claims(sandbox, clients, clock, journal)
    pb = snapshot_stop_start()
    other = Claim.of("run-2", "bastion-2", 42, clock.wall(), clock.wall()).text()
    sandbox.client("ec2", REGION).create_tags(Resources=[b], Tags=[
        {"Key": CLAIM_TAG, "Value": other}])

    resume(journal, pb, clients=clients, clock=clock, bus=EventBus())

    assert {i: claim_of(sandbox, i) for i in (a, b)} == {a: None, b: other}


def test_workspaces_beyond_what_the_tags_bucket_writes_at_once_are_all_claimed(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, tmp_path: Path) -> None:
    """One CreateTags per WorkSpace, paced to the bucket: had every WorkSpace read its
    claim at once, the later writes would wait far past the settle delay and be refused
    (AWS's pacing taken for another run's race): 40 WorkSpaces at 1 write a second."""
    fleet = sandbox.build_fleet(FleetSpec(plain=0, workspaces=40, workspace_mix=("reboot",),
                                          azs=1))
    pb = playbook(step("reboot", "workspaces.reboot"))
    pb = Playbook(**{**pb.__dict__, "targets": TargetSelector(kind="workspace")})
    journal = Journal(tmp_path / "j.sqlite")
    result = Executor(pb, [Target("workspace", w.workspace_id, REGION) for w in fleet.workspaces],
                      clients=clients, clock=clock, bus=EventBus(), journal=journal,
                      run_id="run-1", rate_limits={"workspaces.tags": Bucket(2, 1)}).run()

    assert result.summary == {"succeeded": 40}, set(result.errors.values())
