"""Merging many targets' calls into one request, and the queues calls wait in for tokens.

Calls that name a ``batch_key`` (StopInstances' ``InstanceIds``) and agree on every
other parameter, in the same account and Region, form a *group*; a group leaves
its queue as one request carrying up to the operation's ``batch_limit`` ids. A
group keeps growing while it waits for a token, so the harder a bucket is
pressed the more each request carries. If a merged call fails for a reason that
is not throttling, its members go again one by one so the error lands on the
target that caused it (AWS fails a whole StopInstances call for one bad id).
"""

from __future__ import annotations

import itertools
import json
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from remediate.actions.requests import AwsError, Call
from remediate.aws.apis import Operation
from remediate.aws.errors import ErrorClass, classify
from remediate.executor.scheduler import Caller, Ticket

_solo = itertools.count()


@dataclass(eq=False)
class Pending:
    """One target's call, waiting to be sent (alone or merged)."""

    ticket: Ticket
    call: Call
    op: Operation
    caller: Caller
    queued_at: float
    attempt: int = 1
    solo: bool = False
    # The call's entries under the batch key (empty when it does not batch).
    ids: list[Any] = field(default_factory=list)
    # When the action asked for it (``queued_at`` moves on at each retry).
    submitted_at: float = field(init=False)

    def __post_init__(self) -> None:
        self.submitted_at = self.queued_at

    @property
    def live(self) -> bool:
        return not self.ticket.done

    @property
    def batchable(self) -> bool:
        return bool(self.ids) and not self.solo

    @property
    def size(self) -> int:
        """How many resources the call names (what a resource bucket charges), at least 1."""
        key = self.op.batch_key
        named = self.call.params.get(key) if key else None
        return max(1, len(named)) if isinstance(named, list) else 1

    def group(self) -> Hashable:
        """Calls with equal groups may be merged; a call that cannot batch is alone."""
        if not self.batchable:
            return ("solo", next(_solo))
        key = self.op.batch_key
        rest = {k: v for k, v in self.call.params.items() if k != key}
        return (self.op.service, self.op.name, json.dumps(rest, sort_keys=True, default=str),
                self.call.on_unknown)


def batch_ids(call: Call, op: Operation) -> list[Any]:
    """The ids a call would contribute to a merged request ([] if it cannot be merged)."""
    if call.batch_key is None or call.batch_key != op.batch_key:
        return []
    value = call.params.get(call.batch_key)
    return list(value) if isinstance(value, list) and value else []


def merge(members: Sequence[Pending]) -> tuple[dict[str, Any], int]:
    """The request for ``members`` and how many ids it names (duplicates once)."""
    first = members[0]
    if len(members) == 1 and not first.batchable:
        return dict(first.call.params), first.size
    key = first.op.batch_key
    assert key is not None
    seen: set[str] = set()
    merged: list[Any] = []
    for member in members:
        for item in member.ids:
            mark = json.dumps(item, sort_keys=True, default=str)
            if mark not in seen:
                seen.add(mark)
                merged.append(item)
    return {**first.call.params, key: merged}, len(merged)


@dataclass
class Lane:
    """Calls waiting for one (account, Region, bucket): groups in order of arrival."""

    groups: OrderedDict[Hashable, list[Pending]] = field(default_factory=OrderedDict)

    def add(self, pending: Pending) -> None:
        self.groups.setdefault(pending.group(), []).append(pending)

    def head(self) -> list[Pending] | None:
        """The oldest group with a live member (cancelled members are dropped here)."""
        while self.groups:
            key, members = next(iter(self.groups.items()))
            live = [m for m in members if m.live]
            if live:
                self.groups[key] = live
                return live
            del self.groups[key]
        return None

    def take(self, limit: int, capacity: float | None = None) -> list[Pending]:
        """Up to ``limit`` ids' worth of the head group (at least one member), and no
        more ids than ``capacity`` (a resource bucket's tokens) unless one member alone
        exceeds it. The rest of the group stays at the head."""
        members = self.head()
        if not members:
            return []
        cap = limit if capacity is None else max(1, min(limit, int(capacity)))
        taken: list[Pending] = []
        count = 0
        for member in members:
            if taken and count + member.size > cap:
                break
            taken.append(member)
            count += member.size
        key = next(iter(self.groups))
        rest = members[len(taken):]
        if rest:
            self.groups[key] = rest
        else:
            del self.groups[key]
        return taken

    def __bool__(self) -> bool:
        return self.head() is not None


def ready_for_window(members: Sequence[Pending], now: float, window: float,
                     limit: int) -> float | None:
    """When a batchable group may leave: at once when full or without a window, else once
    its oldest member has waited ``window`` seconds for company. None means now."""
    if window <= 0 or not members[0].batchable:
        return None
    if sum(len(m.ids) for m in members) >= limit:
        return None
    ready = min(m.queued_at for m in members) + window
    return None if ready <= now else ready


def splittable(error: AwsError) -> bool:
    """An error about some id in a request (not throttling): worth asking once per id.
    No capacity too: a smaller request may fit where the merged one did not."""
    return classify(error.code) in (ErrorClass.FATAL, ErrorClass.EVENTUAL, ErrorClass.CAPACITY)
