"""The executor's leases: target keys by account id, and renewal while the run waits on a
human (the canary question blocks the scheduler, whose pump renews them otherwise)."""

from __future__ import annotations

import threading
from typing import Any

from remediate.actions.contract import Target
from remediate.clock import VirtualClock
from remediate.executor.leasing import TargetLeases
from remediate.leases import LeaseTable, Owner
from remediate.sandbox import Sandbox

TABLE = "leases"
TARGET = Target("ec2-instance", "i-0123456789abcdef0", "us-east-1", account="payments")
KEY = "123456789012/us-east-1/i-0123456789abcdef0"  # the sandbox's STS account id


def leases(sb: Sandbox, clock: VirtualClock, run_id: str) -> TargetLeases:
    table = LeaseTable(sb.client("dynamodb"), TABLE, owner=Owner(run_id, "laptop", 1),
                       clock=clock)
    return TargetLeases(table, lambda _account, region, service: sb.client(service, region))


def human(clock: VirtualClock, seconds: float) -> Any:
    """A canary question answered after ``seconds`` of the clock (which the lease renewal
    thread moves on: nothing else runs meanwhile)."""
    def answer(_batch: Any) -> bool:
        done = clock.now() + seconds
        idle = threading.Event()
        while clock.now() < done:
            idle.wait(0.001)
        return True

    return answer


def test_leases_name_targets_by_account_id_and_refuse_them_to_another_run(
        sandbox: Sandbox, clock: VirtualClock) -> None:
    mine = leases(sandbox, clock, "run-a")

    assert mine.lock("run-a", [TARGET], "2024-07-19T05:30:00+00:00").acquired == (TARGET.key,)

    other = leases(sandbox, clock, "run-b").lock("run-b", [TARGET], "now")
    assert (other.acquired, list(other.refused)) == ((), [TARGET.key])
    assert other.refused[TARGET.key].run_id == "run-a"
    items = sandbox.client("dynamodb").scan(TableName=TABLE)["Items"]
    assert [i["pk"]["S"] for i in items] == [KEY]


def test_leases_are_renewed_while_the_run_waits_for_an_answer(
        sandbox: Sandbox, clock: VirtualClock) -> None:
    mine = leases(sandbox, clock, "run-a")
    mine.lock("run-a", [TARGET], "2024-07-19T05:30:00+00:00")

    assert mine.renewing(human(clock, 1_000))(None) is True  # over three lease lifetimes

    assert clock.now() >= 1_000
    other = leases(sandbox, clock, "run-b").lock("run-b", [TARGET], "now")
    assert list(other.refused) == [TARGET.key]
    assert mine.table.lost == set()


def test_without_renewal_a_long_wait_loses_the_target_to_another_run(
        sandbox: Sandbox, clock: VirtualClock) -> None:
    mine = leases(sandbox, clock, "run-a")
    mine.lock("run-a", [TARGET], "2024-07-19T05:30:00+00:00")
    clock.advance(1_000)

    other = leases(sandbox, clock, "run-b").lock("run-b", [TARGET], "now")

    assert (other.acquired, list(other.taken_over)) == ((TARGET.key,), [TARGET.key])
    assert mine.table.renew() == [KEY]
