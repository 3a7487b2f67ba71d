"""Leases in a shared DynamoDB table: one run at a time per target, across machines.

The journal's lock (:mod:`remediate.journal.locks`) keeps two runs on one machine
apart; two SREs on two laptops need a lock both can see. Each target key is an
item ``{pk, owner, run_id, host, pid, acquired_at, expires_at[, execution_arn]}``
written with a conditional PutItem that succeeds only if nobody holds the key,
or it is this owner's already, or the holder's lease has expired and names no
Step Functions execution (see below). A run renews its leases while it lives (:meth:`renew`,
driven by the executor's scheduler through :meth:`pump`, on its clock) and
deletes them at the end (:meth:`release`). A run that dies stops renewing, and
after ``ttl`` its targets can be taken over; the taker learns whose lease it
took. The same run resumed on the same host takes its keys back at once if the
old process is gone (like the journal's lock).

Times in the table are wall-clock epoch seconds from the :class:`Clock` (so a
VirtualClock drives expiry in tests): ``ttl`` must exceed the clock skew
between operators' machines plus the renewal interval. ``expires_at`` is also
the table's DynamoDB TTL attribute, so old leases eventually disappear.

At fleet scale (50,000 keys) the writes go out :data:`WRITERS` at a time, each
item's expiry computed at its own write; the renewal clock starts at the first
grant, and a long :meth:`acquire` renews what it holds between slices of
:data:`SLICES` keys per writer, so no lease expires while the others are still
being taken.
Throttled and transient errors are retried with backoff on the clock
(:mod:`remediate.aws.retrying`).

A lease taken for a Step Functions execution names it (:meth:`bind_execution`):
the execution goes on when the laptop that started it sleeps, so once such a
lease expires, :meth:`acquire` asks Step Functions (``execution_status``) and
treats the lease as held while the execution is RUNNING (or its status cannot
be read); only then is it taken over.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Final, TypeVar

from botocore.exceptions import ClientError

from remediate.aws.errors import from_exception
from remediate.aws.retrying import RetryingClient
from remediate.clock import Clock
from remediate.journal.locks import pid_alive
from remediate.journal.records import LockHolder, LockOutcome, execution_text
from remediate.lease_table import ensure_table

CONDITION_FAILED: Final = "ConditionalCheckFailedException"
DEFAULT_TTL: Final = 300.0
# Lease writes in flight at once; keys taken per writer between two checks that renewal
# is due.
WRITERS: Final = 16
SLICES: Final = 4
# Free, or ours, or expired and not held for a Step Functions execution (checked apart).
_FREE: Final = ("attribute_not_exists(pk) OR #owner = :owner "
                "OR (expires_at < :now AND attribute_not_exists(execution_arn))")
R = TypeVar("R")
# A Step Functions execution's status by ARN (``DescribeExecution``); "MISSING" if there
# is no such execution.
ExecutionStatus = Callable[[str], str]


@dataclass(frozen=True)
class Owner:
    """Who holds a lease: a run, in one process on one host."""

    run_id: str
    host: str
    pid: int

    @classmethod
    def current(cls, run_id: str) -> Owner:
        return cls(run_id, socket.gethostname(), os.getpid())

    @property
    def token(self) -> str:
        return f"{self.run_id}@{self.host}:{self.pid}"


@dataclass(frozen=True)
class Lease:
    """A lease as the table holds it."""

    key: str
    owner: Owner
    acquired_at: str
    expires_at: float
    execution_arn: str | None = None  # taken for this Step Functions execution
    # Why a lease of an execution is held past its expiry ("which is still RUNNING").
    execution_note: str = ""

    def describe(self) -> str:
        return (f"held by run {self.owner.run_id} (pid {self.owner.pid} on {self.owner.host}, "
                f"since {self.acquired_at})"
                f"{execution_text(self.execution_arn, self.execution_note)}")

    def as_lock_holder(self) -> LockHolder:
        return LockHolder(self.key, self.owner.run_id, self.owner.pid, self.owner.host,
                          self.acquired_at, self.execution_arn, self.execution_note)


@dataclass(frozen=True)
class Grant:
    """What :meth:`LeaseTable.acquire` got: the keys now ours, the keys other runs hold
    (refuse those targets, naming the holder), and expired leases we took over."""

    granted: tuple[str, ...]
    held_by_others: Mapping[str, Lease] = field(default_factory=dict)
    taken_over: Mapping[str, Lease] = field(default_factory=dict)

    def as_lock_outcome(self) -> LockOutcome:
        """The journal lock's result type, so the executor can treat both alike."""
        return LockOutcome(self.granted,
                           {k: v.as_lock_holder() for k, v in self.held_by_others.items()},
                           {k: v.as_lock_holder() for k, v in self.taken_over.items()})


def _lease(item: Mapping[str, Any]) -> Lease:
    return Lease(
        key=item["pk"]["S"],
        owner=Owner(item.get("run_id", {}).get("S", "?"), item.get("host", {}).get("S", "?"),
                    int(item.get("pid", {}).get("N", "0"))),
        acquired_at=item.get("acquired_at", {}).get("S", ""),
        expires_at=float(item.get("expires_at", {}).get("N", "0")),
        execution_arn=item.get("execution_arn", {}).get("S"),
    )


class LeaseTable:
    """``client``: a boto3 DynamoDB client (in the table's Region)."""

    def __init__(self, client: Any, table_name: str, *, owner: Owner, clock: Clock,
                 ttl: float = DEFAULT_TTL, renew_every: float | None = None,
                 execution_status: ExecutionStatus | None = None,
                 workers: int = WRITERS) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.workers = max(1, workers)
        self.client = RetryingClient(client, clock)
        self.execution_status = execution_status
        self.table = table_name
        self.owner = owner
        self.clock = clock
        self.ttl = ttl
        self.renew_every = renew_every if renew_every is not None else ttl / 3
        self.held: set[str] = set()
        # Keys whose lease another run took after ours expired (we failed to renew in time).
        self.lost: set[str] = set()
        self._ready = False
        self._next_renewal: float | None = None

    def ensure_table(self) -> None:
        """Create the table on first use and wait until it is ACTIVE."""
        if not self._ready:
            ensure_table(self.client, self.table, self.clock)
            self._ready = True

    # ---- leases ------------------------------------------------------------------------

    def _now(self) -> float:
        return self.clock.wall().timestamp()

    def _item(self, key: str, now: float) -> dict[str, Any]:
        return {
            "pk": {"S": key}, "owner": {"S": self.owner.token},
            "run_id": {"S": self.owner.run_id}, "host": {"S": self.owner.host},
            "pid": {"N": str(self.owner.pid)},
            "acquired_at": {"S": self.clock.wall().isoformat()},
            "expires_at": {"N": f"{now + self.ttl:.3f}"},
        }

    def _parallel(self, work: Callable[[str], R], keys: Sequence[str]) -> list[R]:
        """``work`` on each key, ``workers`` at a time; results in the keys' order."""
        if len(keys) <= 1 or self.workers == 1:
            return [work(key) for key in keys]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(keys)),
                                thread_name_prefix="remediate-leases") as pool:
            return list(pool.map(work, keys))

    def acquire(self, keys: Iterable[str]) -> Grant:
        """Take a lease on each key nobody else holds (or whose lease expired)."""
        self.ensure_table()
        wanted = list(dict.fromkeys(keys))
        granted: list[str] = []
        others: dict[str, Lease] = {}
        taken: dict[str, Lease] = {}
        size = SLICES * self.workers
        for start in range(0, len(wanted), size):
            part = wanted[start:start + size]
            began = self.clock.now()
            for key, (got, previous) in zip(part, self._parallel(self._acquire_one, part),
                                            strict=True):
                if not got:
                    assert previous is not None
                    others[key] = previous
                    continue
                if previous is not None:
                    taken[key] = previous
                granted.append(key)
                self.held.add(key)
                self.lost.discard(key)
            if self.held and self._next_renewal is None:
                self._next_renewal = began + self.renew_every  # from the first grant
            self.pump()  # a long acquire renews the leases it took first
        return Grant(tuple(granted), others, taken)

    def _acquire_one(self, key: str) -> tuple[bool, Lease | None]:
        """(granted, the other owner's lease: the one taken over, or the one holding it)."""
        while True:
            now = self._now()
            try:
                old = self.client.put_item(
                    TableName=self.table, Item=self._item(key, now), ConditionExpression=_FREE,
                    ExpressionAttributeNames={"#owner": "owner"},
                    ExpressionAttributeValues={":now": {"N": f"{now:.3f}"},
                                               ":owner": {"S": self.owner.token}},
                    ReturnValues="ALL_OLD").get("Attributes")
            except ClientError as exc:
                if exc.response["Error"]["Code"] != CONDITION_FAILED:
                    raise
                holder = self._read(key)
                if holder is None:
                    continue  # released between our write and our read: try again
                if self._resumable(holder) and self._swap(key, holder):
                    return True, holder
                if holder.execution_arn is None or holder.expires_at >= self._now():
                    return False, holder
                note = self._still_running(holder.execution_arn)
                if note:
                    return False, replace(holder, execution_note=note)
                if self._swap(key, holder, expired=True):
                    return True, holder
                continue  # renewed or taken meanwhile: look again
            if old and old.get("owner", {}).get("S") != self.owner.token:
                return True, _lease(old)  # an expired lease of another run
            return True, None

    def _still_running(self, execution_arn: str) -> str:
        """Why the expired lease of ``execution_arn`` still holds ("": it does not)."""
        if self.execution_status is None:
            return "whose status this run cannot read"
        try:
            status = self.execution_status(execution_arn)
        except Exception as exc:  # unreadable: the execution may run, keep off the target
            return f"whose status could not be read ({from_exception(exc, 'DescribeExecution')})"
        return "which is still RUNNING" if status == "RUNNING" else ""

    def _read(self, key: str) -> Lease | None:
        item = self.client.get_item(TableName=self.table, Key={"pk": {"S": key}},
                                    ConsistentRead=True).get("Item")
        return _lease(item) if item else None

    def _resumable(self, holder: Lease) -> bool:
        """Our own run, on this host, whose process is gone (a crash, then ``resume``)."""
        mine = self.owner
        return (holder.owner.run_id == mine.run_id and holder.owner.host == mine.host
                and holder.owner.pid != mine.pid and not pid_alive(holder.owner.pid))

    def _swap(self, key: str, holder: Lease, *, expired: bool = False) -> bool:
        """Take ``holder``'s lease over if it is still theirs (and, with ``expired``, not
        renewed since it was read)."""
        condition = "#owner = :old"
        values = {":old": {"S": holder.owner.token}}
        if expired:
            condition += " AND expires_at = :expires"
            values[":expires"] = {"N": f"{holder.expires_at:.3f}"}
        try:
            self.client.put_item(
                TableName=self.table, Item=self._item(key, self._now()),
                ConditionExpression=condition, ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues=values)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != CONDITION_FAILED:
                raise
            return False
        return True

    def _ours(self, key: str, call: Callable[..., Any], **request: Any) -> bool:
        """A write on ``key`` made only while we hold it: False if we do not (any more)."""
        values = {":owner": {"S": self.owner.token}, **request.pop("values", {})}
        try:
            call(TableName=self.table, Key={"pk": {"S": key}},
                 ConditionExpression="#owner = :owner",
                 ExpressionAttributeNames={"#owner": "owner"},
                 ExpressionAttributeValues=values, **request)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != CONDITION_FAILED:
                raise
            return False
        return True

    def _renew_one(self, key: str) -> bool:
        expires = self._now() + self.ttl  # at this key's own write
        return self._ours(key, self.client.update_item,
                          UpdateExpression="SET expires_at = :expires",
                          values={":expires": {"N": f"{expires:.3f}"}})

    def _drop(self, keys: Sequence[str], kept: Sequence[bool]) -> list[str]:
        """Forget the keys whose conditional write found them no longer ours: lost."""
        lost = [key for key, ours in zip(keys, kept, strict=True) if not ours]
        self.held.difference_update(lost)
        self.lost.update(lost)
        return lost

    def renew(self) -> list[str]:
        """Extend every lease we hold by ``ttl`` from its own write; returns the keys lost
        (another run took them after our lease expired: stop working on those targets)."""
        began = self.clock.now()
        keys = sorted(self.held)
        lost = self._drop(keys, self._parallel(self._renew_one, keys))
        # The first key renewed expires first: the next renewal counts from it.
        self._next_renewal = began + self.renew_every if self.held else None
        return lost

    def bind_execution(self, keys: Iterable[str], execution_arn: str) -> list[str]:
        """Name the Step Functions execution that works on ``keys`` in their leases (before
        it starts); returns the keys lost meanwhile."""
        wanted = sorted(set(keys) & self.held)

        def bind(key: str) -> bool:
            return self._ours(key, self.client.update_item,
                              UpdateExpression="SET execution_arn = :execution",
                              values={":execution": {"S": execution_arn}})

        return self._drop(wanted, self._parallel(bind, wanted))

    def pump(self) -> float | None:
        """For the executor's scheduler (``scheduler.add_pump(leases.pump)``): renew when
        due; returns when it is next due on the clock (None: nothing held)."""
        if self._next_renewal is not None and self.clock.now() >= self._next_renewal:
            self.renew()
        return self._next_renewal

    def release(self, keys: Iterable[str] | None = None) -> None:
        """Give up our leases (all of them by default); never deletes another run's."""
        wanted = sorted(self.held if keys is None else set(keys) & self.held)
        self._parallel(lambda key: self._ours(key, self.client.delete_item), wanted)
        self.held.difference_update(wanted)
        if not self.held:
            self._next_renewal = None

    def holders(self, keys: Iterable[str]) -> dict[str, Lease]:
        """Current leases on ``keys`` (expired ones included), for reports."""
        found = {}
        for key in keys:
            lease = self._read(key)
            if lease is not None:
                found[key] = lease
        return found

    # ---- the journal lock's interface -------------------------------------------------

    def lock_targets(self, run_id: str, keys: Iterable[str], started_at: str) -> LockOutcome:
        """Same signature and result as :meth:`Journal.lock_targets`."""
        if run_id != self.owner.run_id:
            raise ValueError(f"this lease table acts for run {self.owner.run_id}, not {run_id}")
        return self.acquire(keys).as_lock_outcome()

    def release_locks(self, run_id: str) -> None:
        """Same signature as :meth:`Journal.release_locks`."""
        self.release()
