"""The shared DynamoDB lease table: two operators' runs never work on the same target."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from remediate.clock import VirtualClock
from remediate.journal.locks import pid_alive
from remediate.leases import Grant, LeaseTable, Owner
from remediate.sandbox import Sandbox

TABLE = "remediate-leases"


@pytest.fixture
def dynamodb(sandbox: Sandbox) -> Any:
    # The sandbox serializes requests like DynamoDB serializes writes to one item
    # (plain moto does not lock, so its conditional writes could race).
    return sandbox.client("dynamodb")


def execution_status(sandbox: Sandbox, clock: VirtualClock) -> Any:
    """The lease table's view of Step Functions, as `--lock-table` builds it."""
    from remediate.aws.clients import ClientFactory
    from remediate.cli.lock_table import execution_status

    return execution_status(ClientFactory(session=sandbox.boto3_session()), clock)


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


class SlowWrites:
    """Each lease write takes ``seconds`` of the clock (a hook on the real boto3 client),
    and a write renewing a lease checks that it had not expired before: a renewal too late
    is a gap in which another run could take the target."""

    def __init__(self, dynamodb: Any, clock: VirtualClock, seconds: float) -> None:
        self.clock = clock
        self.seconds = seconds
        self.expiry: dict[str, float] = {}
        self.gaps: list[str] = []
        self.lock = threading.Lock()
        for operation in ("PutItem", "UpdateItem"):
            dynamodb.meta.events.register(f"before-parameter-build.dynamodb.{operation}", self)

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        with self.lock:
            self.clock.advance(self.seconds)
            now = self.clock.wall().timestamp()
            if "Item" in params:
                key, expires = params["Item"]["pk"]["S"], params["Item"]["expires_at"]["N"]
            else:
                key, expires = params["Key"]["pk"]["S"], (
                    params["ExpressionAttributeValues"][":expires"]["N"])
            previous = self.expiry.get(key)
            if previous is not None and previous <= now:
                self.gaps.append(f"{key}: expired at {previous:.1f}, renewed at {now:.1f}")
            self.expiry[key] = float(expires)


def expiries(dynamodb: Any, start: float) -> list[float]:
    """Each lease's expiry, in seconds after ``start`` (the clock's wall time at 0)."""
    items = dynamodb.scan(TableName=TABLE)["Items"]
    return sorted(float(i["expires_at"]["N"]) - start for i in items)


def test_each_lease_expires_ttl_after_its_own_write_and_renewals_count_from_the_first(
        dynamodb: Any, clock: VirtualClock) -> None:
    alice = leases(dynamodb, clock, "run-alice", ttl=60, workers=1)  # one at a time: exact
    alice.ensure_table()
    start = clock.wall().timestamp()
    SlowWrites(dynamodb, clock, seconds=2.0)

    alice.acquire(keys(1, 3))

    assert expiries(dynamodb, start) == [60.0, 62.0, 64.0]
    # Due 20 s (ttl / 3) after the first grant, not after the last.
    assert (clock.now(), alice.pump()) == (6.0, 20.0)
    clock.advance(14.0)
    alice.pump()  # renews, each key from its own write (before: all from the first)
    assert expiries(dynamodb, start) == [80.0, 82.0, 84.0]
    assert (clock.now(), alice.pump()) == (26.0, 40.0)


def test_many_leases_taken_slowly_never_expire_while_others_are_taken_or_renewed(
        dynamodb: Any, clock: VirtualClock) -> None:
    # 400 leases at half a second a write: taking them all takes 200 s, renewing them all
    # 200 s, of a 300 s lease. Before, the first were written expired by the time their
    # renewal came (due only after the last grant; one `now` for a whole renewal).
    alice = leases(dynamodb, clock, "run-alice")  # ttl 300 s, renewed every 100 s
    alice.ensure_table()
    writes = SlowWrites(dynamodb, clock, seconds=0.5)

    alice.acquire(keys(1, 400))
    assert clock.now() >= 200.0
    while clock.now() < 900.0:  # the run goes on, its scheduler pumping
        due = alice.pump()
        assert due is not None
        clock.advance(max(0.0, due - clock.now()))

    assert writes.gaps == []
    assert (alice.held, alice.lost) == (set(keys(1, 400)), set())
    assert min(writes.expiry.values()) > clock.wall().timestamp()
    assert len(writes.expiry) == 400


def test_an_expired_lease_holds_while_its_step_functions_execution_runs(
        sandbox: Sandbox, dynamodb: Any, clock: VirtualClock) -> None:
    sfn = sandbox.client("stepfunctions")
    machine = sfn.create_state_machine(
        name="hold", roleArn="arn:aws:iam::123456789012:role/sfn",
        definition='{"StartAt": "w", "States": {"w": {"Type": "Wait", "Seconds": 60, '
                   '"End": true}}}')["stateMachineArn"]
    # moto without its interpreter: an execution stays RUNNING until stopped.
    arn = sfn.start_execution(stateMachineArn=machine, name="run-alice")["executionArn"]
    alice = leases(dynamodb, clock, "run-alice", ttl=60)
    bob = leases(dynamodb, clock, "run-bob", "laptop-b", ttl=60,
                 execution_status=execution_status(sandbox, clock))
    alice.acquire(keys(1, 2))
    assert alice.bind_execution(keys(1, 1), arn) == []
    since = alice.holders(keys(1, 1))[keys(1, 1)[0]].acquired_at
    clock.advance(61)  # alice's laptop went to sleep; her execution did not

    running = bob.acquire(keys(1, 2))
    sfn.stop_execution(executionArn=arn)
    ended = bob.acquire(keys(1, 1))

    assert running.granted == tuple(keys(2, 2))  # expired, no execution: taken over
    (held,) = running.held_by_others.values()
    assert held.describe() == (
        f"held by run run-alice (pid 4242 on laptop-a, since {since}) for Step Functions "
        f"execution {arn}, which is still RUNNING")
    assert running.as_lock_outcome().refused[keys(1, 1)[0]].describe() == (
        f"locked by run run-alice (pid 4242 on laptop-a, started {since}) for Step Functions "
        f"execution {arn}, which is still RUNNING")
    assert ended.granted == tuple(keys(1, 1))  # ABORTED now: the lease is free
    assert [lease.execution_arn for lease in ended.taken_over.values()] == [arn]


def test_an_expired_lease_of_an_execution_that_never_started_is_taken_over(
        sandbox: Sandbox, dynamodb: Any, clock: VirtualClock) -> None:
    alice = leases(dynamodb, clock, "run-alice", ttl=60)
    bob = leases(dynamodb, clock, "run-bob", "laptop-b", ttl=60,
                 execution_status=execution_status(sandbox, clock))
    alice.acquire(keys(1, 1))
    alice.bind_execution(keys(1, 1), "arn:aws:states:us-east-1:123456789012:execution:m:gone")
    clock.advance(61)

    assert bob.acquire(keys(1, 1)).granted == tuple(keys(1, 1))
