"""The leases of a run on Step Functions: bound to its executions, said when lost, and never
given back while an execution may still work on their targets."""

from __future__ import annotations

import pytest

from remediate.actions.contract import Target
from remediate.cli.execution_leases import ExecutionLeases
from remediate.clock import VirtualClock
from remediate.executor.events import Event, EventBus, Notice
from remediate.executor.leasing import TargetLeases
from remediate.leases import LeaseTable, Owner
from remediate.sandbox import Sandbox

TABLE = "leases"
ARN = "arn:aws:states:us-east-1:123456789012:execution:ec2-reboot-first:r1"
A, B = (Target("ec2-instance", f"i-0000000000000000{n}", "us-east-1") for n in (1, 2))


def target_leases(sb: Sandbox, clock: VirtualClock, run_id: str) -> TargetLeases:
    table = LeaseTable(sb.client("dynamodb"), TABLE, owner=Owner(run_id, "laptop", 1),
                       clock=clock)
    return TargetLeases(table, lambda _account, region, service: sb.client(service, region))


def recorded() -> tuple[EventBus, list[Event]]:
    events: list[Event] = []
    bus = EventBus()
    bus.subscribe(events.append)
    return bus, events


def items(sb: Sandbox) -> dict[str, str | None]:
    """Lease key -> the execution it names."""
    found = sb.client("dynamodb").scan(TableName=TABLE)["Items"]
    return {i["pk"]["S"]: i.get("execution_arn", {}).get("S") for i in found}


def test_a_lease_lost_while_following_is_said_and_the_execution_named_in_the_others(
        sandbox: Sandbox, clock: VirtualClock) -> None:
    bus, events = recorded()
    mine = target_leases(sandbox, clock, "r1")
    mine.lock("r1", [A, B], "2024-07-19T05:30:00+00:00")
    flight = ExecutionLeases(mine, bus)
    flight.starting([B], ARN)  # A waits for the next execution
    clock.advance(400)  # the laptop slept through its renewals
    other = target_leases(sandbox, clock, "r2").lock("r2", [A, B], "now")
    assert (other.acquired, list(other.refused)) == ((A.key,), [B.key])  # B: ARN unread

    flight.renew()

    assert events == [Notice("error", f"{A.key}: lost its lease in lock table {TABLE}: "
                                      "another run may work on it now; its execution goes on "
                                      "working on it: check what the other run does to it, "
                                      "or stop the execution")]
    assert mine.held() == {B.key}
    assert items(sandbox) == {f"123456789012/us-east-1/{A.id}": None,  # r2's now
                              f"123456789012/us-east-1/{B.id}": ARN}


def test_stopped_while_an_execution_runs_it_keeps_only_that_executions_leases(
        sandbox: Sandbox, clock: VirtualClock, capsys: pytest.CaptureFixture[str]) -> None:
    mine = target_leases(sandbox, clock, "r1")
    mine.lock("r1", [A, B], "2024-07-19T05:30:00+00:00")
    flight = ExecutionLeases(mine, EventBus())
    flight.starting([A], ARN)  # the canary execution; B's would come after the question

    flight.stop()

    assert items(sandbox) == {f"123456789012/us-east-1/{A.id}": ARN}
    assert capsys.readouterr().err == (
        f"kept the leases of 1 target in lock table {TABLE}: execution {ARN} may still be "
        "running, and other runs keep off its targets while it does\n")
    flight.ended([A])
    flight.stop()
    assert items(sandbox) == {}
    assert capsys.readouterr().err == ""


def test_a_renewal_that_fails_is_said_and_tried_again_at_the_next_poll(
        sandbox: Sandbox, clock: VirtualClock) -> None:
    bus, events = recorded()
    mine = target_leases(sandbox, clock, "r1")
    mine.lock("r1", [A], "2024-07-19T05:30:00+00:00")
    flight = ExecutionLeases(mine, bus)
    clock.advance(100)
    sandbox.fail("UpdateItem", "AccessDeniedException", "not allowed")

    flight.renew()
    sandbox.clear_faults()
    flight.renew()

    assert events == [Notice("error", f"could not renew the leases in lock table {TABLE}: "
                                      "An error occurred (AccessDeniedException) when calling "
                                      "the UpdateItem operation: not allowed; trying again")]
    assert mine.held() == {A.key} and mine.table.lost == set()
