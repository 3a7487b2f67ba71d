"""Leases in a shared DynamoDB table: one run at a time per target, across machines.

The journal's lock (:mod:`remediate.journal.locks`) keeps two runs on one machine
apart; two SREs on two laptops need a lock both can see. Each target key is an
item ``{pk, owner, run_id, host, pid, acquired_at, expires_at}`` written with a
conditional PutItem that succeeds only if nobody holds the key or the holder's
lease has expired (``attribute_not_exists(pk) OR expires_at < :now``), or it is
this owner's already. A run renews its leases while it lives (:meth:`renew`,
driven by the executor's scheduler through :meth:`pump`, on its clock) and
deletes them at the end (:meth:`release`). A run that dies stops renewing, and
after ``ttl`` its targets can be taken over; the taker learns whose lease it
took. The same run resumed on the same host takes its keys back at once if the
old process is gone (like the journal's lock).

Times in the table are wall-clock epoch seconds from the :class:`Clock` (so a
VirtualClock drives expiry in tests): ``ttl`` must exceed the clock skew
between operators' machines plus the renewal interval. ``expires_at`` is also
the table's DynamoDB TTL attribute, so old leases eventually disappear.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from botocore.exceptions import ClientError

from remediate.clock import Clock
from remediate.journal.locks import pid_alive
from remediate.journal.records import LockHolder, LockOutcome

CONDITION_FAILED: Final = "ConditionalCheckFailedException"
DEFAULT_TTL: Final = 300.0
_ACTIVE_POLLS: Final = 120


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

    def describe(self) -> str:
        return (f"held by run {self.owner.run_id} (pid {self.owner.pid} on {self.owner.host}, "
                f"since {self.acquired_at})")

    def as_lock_holder(self) -> LockHolder:
        return LockHolder(self.key, self.owner.run_id, self.owner.pid, self.owner.host,
                          self.acquired_at)


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
    )


class LeaseTable:
    """``client``: a boto3 DynamoDB client (in the table's Region)."""

    def __init__(self, client: Any, table_name: str, *, owner: Owner, clock: Clock,
                 ttl: float = DEFAULT_TTL, renew_every: float | None = None) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.client = client
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

    # ---- the table ---------------------------------------------------------------------

    def ensure_table(self) -> None:
        """Create the table on first use (two runs creating it at once is fine) and wait
        until it is ACTIVE; turn on its TTL on ``expires_at``."""
        if self._ready:
            return
        created = False
        try:
            status = self.client.describe_table(TableName=self.table)["Table"]["TableStatus"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            status, created = self._create()
        for _ in range(_ACTIVE_POLLS):
            if status == "ACTIVE":
                break
            self.clock.sleep(1.0)
            status = self.client.describe_table(TableName=self.table)["Table"]["TableStatus"]
        else:
            raise TimeoutError(f"DynamoDB table {self.table} is still {status}")
        if created:
            self._enable_ttl()
        self._ready = True

    def _create(self) -> tuple[str, bool]:
        """(status, whether this call created it)."""
        try:
            table = self.client.create_table(
                TableName=self.table, BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                Tags=[{"Key": "remediate:purpose", "Value": "target leases"}])["TableDescription"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":  # created meanwhile
                raise
            status = self.client.describe_table(TableName=self.table)["Table"]["TableStatus"]
            return str(status), False
        return str(table["TableStatus"]), True

    def _enable_ttl(self) -> None:
        # Housekeeping only: leases expire by their expires_at either way.
        with contextlib.suppress(ClientError):
            self.client.update_time_to_live(TableName=self.table, TimeToLiveSpecification={
                "Enabled": True, "AttributeName": "expires_at"})

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

    def acquire(self, keys: Iterable[str]) -> Grant:
        """Take a lease on each key nobody else holds (or whose lease expired)."""
        self.ensure_table()
        granted: list[str] = []
        others: dict[str, Lease] = {}
        taken: dict[str, Lease] = {}
        for key in dict.fromkeys(keys):
            got, previous = self._acquire_one(key)
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
            self._next_renewal = self.clock.now() + self.renew_every
        return Grant(tuple(granted), others, taken)

    def _acquire_one(self, key: str) -> tuple[bool, Lease | None]:
        """(granted, the other owner's lease: the one taken over, or the one holding it)."""
        while True:
            now = self._now()
            try:
                old = self.client.put_item(
                    TableName=self.table, Item=self._item(key, now),
                    ConditionExpression=("attribute_not_exists(pk) OR expires_at < :now "
                                         "OR #owner = :owner"),
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
                return False, holder
            if old and old.get("owner", {}).get("S") != self.owner.token:
                return True, _lease(old)  # an expired lease of another run
            return True, None

    def _read(self, key: str) -> Lease | None:
        item = self.client.get_item(TableName=self.table, Key={"pk": {"S": key}},
                                    ConsistentRead=True).get("Item")
        return _lease(item) if item else None

    def _resumable(self, holder: Lease) -> bool:
        """Our own run, on this host, whose process is gone (a crash, then ``resume``)."""
        mine = self.owner
        return (holder.owner.run_id == mine.run_id and holder.owner.host == mine.host
                and holder.owner.pid != mine.pid and not pid_alive(holder.owner.pid))

    def _swap(self, key: str, holder: Lease) -> bool:
        try:
            self.client.put_item(
                TableName=self.table, Item=self._item(key, self._now()),
                ConditionExpression="#owner = :old",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":old": {"S": holder.owner.token}})
        except ClientError as exc:
            if exc.response["Error"]["Code"] != CONDITION_FAILED:
                raise
            return False
        return True

    def renew(self) -> list[str]:
        """Extend every lease we hold by ``ttl`` from now; returns the keys lost (another
        run took them after our lease expired: stop working on those targets)."""
        lost: list[str] = []
        now = self._now()
        for key in sorted(self.held):
            try:
                self.client.update_item(
                    TableName=self.table, Key={"pk": {"S": key}},
                    UpdateExpression="SET expires_at = :expires",
                    ConditionExpression="#owner = :owner",
                    ExpressionAttributeNames={"#owner": "owner"},
                    ExpressionAttributeValues={":expires": {"N": f"{now + self.ttl:.3f}"},
                                               ":owner": {"S": self.owner.token}})
            except ClientError as exc:
                if exc.response["Error"]["Code"] != CONDITION_FAILED:
                    raise
                lost.append(key)
        self.held.difference_update(lost)
        self.lost.update(lost)
        self._next_renewal = self.clock.now() + self.renew_every if self.held else None
        return lost

    def pump(self) -> float | None:
        """For the executor's scheduler (``scheduler.add_pump(leases.pump)``): renew when
        due; returns when it is next due on the clock (None: nothing held)."""
        if self._next_renewal is not None and self.clock.now() >= self._next_renewal:
            self.renew()
        return self._next_renewal

    def release(self, keys: Iterable[str] | None = None) -> None:
        """Give up our leases (all of them by default); never deletes another run's."""
        for key in sorted(self.held if keys is None else set(keys) & self.held):
            try:
                self.client.delete_item(
                    TableName=self.table, Key={"pk": {"S": key}},
                    ConditionExpression="#owner = :owner",
                    ExpressionAttributeNames={"#owner": "owner"},
                    ExpressionAttributeValues={":owner": {"S": self.owner.token}})
            except ClientError as exc:
                if exc.response["Error"]["Code"] != CONDITION_FAILED:
                    raise
            self.held.discard(key)
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
