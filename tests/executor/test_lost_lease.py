"""A shared lease lost mid-run (the laptop slept past its expiry and another run took the
target over): this run starts no further step on that target, and says why."""

from __future__ import annotations

from typing import Any

from executor_support import REGION, events_of, swap_playbook

from remediate.actions.contract import Target
from remediate.clock import VirtualClock
from remediate.executor.engine import Executor
from remediate.executor.events import Event, EventBus, Notice, StepFinished, StepStarted
from remediate.executor.leasing import TargetLeases
from remediate.journal import Journal
from remediate.leases import LeaseTable, Owner
from remediate.sandbox import FleetSpec, Sandbox

TABLE = "leases"


def test_a_target_whose_lease_was_taken_over_gets_no_further_step(
        sandbox: Sandbox, clients: Any, clock: VirtualClock, bus: EventBus,
        events: list[Event], tmp_path: Any) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=2, azs=1))
    lost, kept = sorted(fleet.targets, key=lambda t: t.instance_id)
    table = LeaseTable(sandbox.client("dynamodb"), TABLE, owner=Owner("run-a", "laptop", 1),
                       clock=clock, ttl=120.0)
    leases = TargetLeases(table, clients)
    pb = swap_playbook(fleet.regions[REGION].rescue_windows_ami, concurrency=2)
    targets = [Target("ec2-instance", t.instance_id, t.region) for t in fleet.targets]
    executor = Executor(pb, targets, clients=clients, clock=clock, bus=bus,
                        journal=Journal(tmp_path / "run.journal"), run_id="run-a",
                        leases=leases)
    dynamodb = sandbox.client("dynamodb")

    def take_over(event: Event) -> None:
        # Another run's conditional write after our lease expired: it owns the item now.
        if (isinstance(event, StepFinished) and event.step_id == "snapshot"
                and event.target.id == lost.instance_id):
            key = f"123456789012/{REGION}/{lost.instance_id}"
            dynamodb.update_item(
                TableName=TABLE, Key={"pk": {"S": key}},
                UpdateExpression="SET #owner = :other",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":other": {"S": "run-b@desktop:2"}})

    bus.subscribe(take_over)
    result = executor.run()

    key = f"default/{REGION}/{lost.instance_id}"
    assert result.statuses == {key: "interrupted", f"default/{REGION}/{kept.instance_id}":
                               "succeeded"}
    assert result.errors[key].startswith(
        f"lost its lease in lock table {TABLE}: another run may work on it now; stopped "
        "before step ")
    assert result.errors[key].endswith(", not rolled back")
    started = [e.step_id for e in events_of(events, StepStarted) if e.target.id == lost.instance_id]
    assert "verify" not in started and not any(s.startswith("rb_") for s in started)
    [notice] = [n for n in events_of(events, Notice) if "lost its lease" in n.message]
    assert notice.level == "error" and notice.message.startswith(f"{key}: lost its lease")
