"""The shared DynamoDB lease table: two operators' runs never work on the same target."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from remediate.clock import VirtualClock
from remediate.journal.locks import pid_alive
from remediate.leases import Grant, LeaseTable, Owner
from remediate.sandbox import Sandbox

TABLE = "remediate-leases"


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def dynamodb(clock: VirtualClock) -> Iterator[Any]:
    # The sandbox serializes requests like DynamoDB serializes writes to one item
    # (plain moto does not lock, so its conditional writes could race).
    with Sandbox(clock=clock) as sb:
        yield sb.client("dynamodb")


def leases(dynamodb: Any, clock: VirtualClock, run_id: str, host: str = "laptop-a",
           pid: int = 4242, **options: Any) -> LeaseTable:
    return LeaseTable(dynamodb, TABLE, owner=Owner(run_id, host, pid), clock=clock, **options)


def keys(first: int, last: int) -> list[str]:
    return [f"123456789012/us-east-1/i-{n:017x}" for n in range(first, last + 1)]


def test_the_table_is_created_on_first_use_with_expiry_as_its_ttl(
        dynamodb: Any, clock: VirtualClock) -> None:
    grant = leases(dynamodb, clock, "run-a").acquire(keys(1, 2))

    assert grant.granted == tuple(keys(1, 2))
    table = dynamodb.describe_table(TableName=TABLE)["Table"]
    assert (table["TableStatus"], table["KeySchema"]) == (
        "ACTIVE", [{"AttributeName": "pk", "KeyType": "HASH"}])
    assert dynamodb.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


def test_two_runs_started_at_once_never_share_a_target_and_know_who_held_the_rest(
        dynamodb: Any, clock: VirtualClock) -> None:
    alice = leases(dynamodb, clock, "run-alice", "laptop-a")
    bob = leases(dynamodb, clock, "run-bob", "laptop-b")
    alice.ensure_table()
    wanted = {"alice": keys(0, 29), "bob": keys(15, 44)}
    for names in wanted.values():
        random.Random(7).shuffle(names)
    grants: dict[str, Grant] = {}
    start = threading.Barrier(2)

    def run(name: str, table: LeaseTable) -> None:
        start.wait()
        grants[name] = table.acquire(wanted[name])

    threads = [threading.Thread(target=run, args=("alice", alice)),
               threading.Thread(target=run, args=("bob", bob))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    got_alice, got_bob = set(grants["alice"].granted), set(grants["bob"].granted)
    assert not got_alice & got_bob
    assert got_alice | got_bob == set(keys(0, 44))
    overlap = set(keys(15, 29))
    assert set(grants["alice"].held_by_others) == overlap & got_bob
    assert set(grants["bob"].held_by_others) == overlap & got_alice
    assert {h.owner.run_id for h in grants["alice"].held_by_others.values()} <= {"run-bob"}
    assert {h.owner.run_id for h in grants["bob"].held_by_others.values()} <= {"run-alice"}
    # Both work on, renewing as the clock goes, and finish.
    for _ in range(10):
        clock.advance(alice.renew_every)
        alice.pump()
        bob.pump()
    assert (alice.lost, bob.lost) == (set(), set())
    alice.release()
    bob.release()
    assert dynamodb.scan(TableName=TABLE)["Count"] == 0


def test_a_lease_not_renewed_expires_and_is_taken_over(
        dynamodb: Any, clock: VirtualClock) -> None:
    alice = leases(dynamodb, clock, "run-alice", "laptop-a", ttl=60)
    bob = leases(dynamodb, clock, "run-bob", "laptop-b", ttl=60)
    alice.acquire(keys(1, 1))

    clock.advance(59)
    early = bob.acquire(keys(1, 1))
    clock.advance(2)  # alice's laptop slept through her renewals
    late = bob.acquire(keys(1, 1))

    (held,) = early.held_by_others.values()
    assert (early.granted, held.owner) == ((), Owner("run-alice", "laptop-a", 4242))
    assert held.describe().startswith("held by run run-alice (pid 4242 on laptop-a, since ")
    assert late.granted == tuple(keys(1, 1))
    assert [lease.owner.run_id for lease in late.taken_over.values()] == ["run-alice"]
    assert alice.renew() == keys(1, 1)
    assert (alice.held, alice.lost) == (set(), set(keys(1, 1)))


def test_renewing_keeps_leases_alive_for_as_long_as_the_run_lives(
        dynamodb: Any, clock: VirtualClock) -> None:
    alice = leases(dynamodb, clock, "run-alice", ttl=60)
    bob = leases(dynamodb, clock, "run-bob", "laptop-b", ttl=60)
    alice.acquire(keys(1, 3))

    for _ in range(30):  # ten minutes, a pump every 20 s
        assert alice.pump() == clock.now() + 20
        clock.advance(20)
    alice.pump()

    assert bob.acquire(keys(1, 3)).granted == ()
    assert alice.held == set(keys(1, 3))


def test_release_gives_up_only_our_own_leases(dynamodb: Any, clock: VirtualClock) -> None:
    alice = leases(dynamodb, clock, "run-alice", ttl=60)
    bob = leases(dynamodb, clock, "run-bob", "laptop-b", ttl=60)
    alice.acquire(keys(1, 2))

    alice.release(keys(1, 1))
    assert bob.acquire(keys(1, 2)).granted == tuple(keys(1, 1))
    alice.release()
    alice.held.add(keys(1, 1)[0])  # a stale belief must not delete bob's lease
    alice.release()

    assert bob.holders(keys(1, 2)).keys() == {keys(1, 1)[0]}
    assert alice.pump() is None


def test_the_same_run_resumed_on_this_host_takes_its_leases_back_once_its_process_is_gone(
        dynamodb: Any, clock: VirtualClock) -> None:
    dead = next(pid for pid in range(4_000_000, 4_100_000) if not pid_alive(pid))
    crashed = leases(dynamodb, clock, "run-1", "laptop-a", pid=dead)
    crashed.acquire(keys(1, 1))

    resumed = leases(dynamodb, clock, "run-1", "laptop-a", pid=4243).acquire(keys(1, 1))
    elsewhere = leases(dynamodb, clock, "run-1", "laptop-b", pid=1).acquire(keys(1, 1))

    assert resumed.granted == tuple(keys(1, 1))
    assert [lease.owner.pid for lease in resumed.taken_over.values()] == [dead]
    assert elsewhere.granted == ()  # another host: its process cannot be checked


def test_it_answers_like_the_journal_lock_for_the_executor(
        dynamodb: Any, clock: VirtualClock) -> None:
    alice = leases(dynamodb, clock, "run-alice")
    alice.acquire(keys(1, 1))
    bob = leases(dynamodb, clock, "run-bob", "laptop-b", pid=7)

    outcome = bob.lock_targets("run-bob", keys(1, 2), "2024-07-19T05:30:00+00:00")

    assert outcome.acquired == tuple(keys(2, 2))
    holder = outcome.refused[keys(1, 1)[0]]
    assert (holder.run_id, holder.pid, holder.host) == ("run-alice", 4242, "laptop-a")
    assert outcome.taken_over == {}
    bob.release_locks("run-bob")
    assert bob.held == set()
    with pytest.raises(ValueError, match="this lease table acts for run run-bob, not run-x"):
        bob.lock_targets("run-x", [], "")
