"""Waits: many targets' waits answered by one Describe call per chunk of ids.

Pending waits are grouped by (account, Region, resource). Every
``execution.poll_interval`` the group is described in chunks of the resource's
``max_ids`` (200 instances per DescribeInstances), and each wait is resolved with
its record once its ``until`` holds, failed when its ``failed`` names a reason,
or timed out. A new wait does not wait for the next round: new waits are
described together soon after they arrive (at most once per ``fresh_gap`` per
group), which keeps ``observe()`` quick without a Describe per target.

Describes go through the call layer like any call (paced, retried). When a chunk
fails for good, its ids are described one by one so one bad id cannot fail the
others' waits; an id AWS says does not exist reads as ``None`` ("missing").
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

from remediate.actions.requests import AwsError, Call, Record, Wait, WaitFailed, WaitTimeout
from remediate.aws.errors import EVENTUAL_CODES
from remediate.aws.resources import RESOURCES, Resource
from remediate.executor.batching import splittable
from remediate.executor.scheduler import Caller, Scheduler, Ticket, Timer
from remediate.language.durations import format_duration

GroupKey = tuple[str, str, str]
Records = dict[str, Record]

# Codes meaning "no such resource" for a Describe of one id.
MISSING_CODES = EVENTUAL_CODES | frozenset({"InvocationDoesNotExist", "ResourceNotFoundException"})


@dataclass(eq=False)
class WaitEntry:
    ticket: Ticket
    wait: Wait
    deadline: float


@dataclass(eq=False)
class Group:
    key: GroupKey
    entries: list[WaitEntry] = field(default_factory=list)
    fresh: list[WaitEntry] = field(default_factory=list)
    periodic: Timer | None = None
    soon: Timer | None = None
    last_fresh: float = float("-inf")
    outstanding: int = 0
    round_started: float = 0.0


def describe(resource: Resource, ids: list[str]) -> Generator[Call, Any, Records]:
    """Records for ``ids`` (all pages), as a task the scheduler runs."""
    params = resource.request(ids)
    records: Records = {}
    while True:
        response = yield Call(resource.service, resource.operation, params,
                              note=f"poll {len(ids)} {resource.name}")
        records.update(resource.records(response))
        token = response.get(resource.next_token) if resource.next_token else None
        if not token or not resource.next_token:
            return records
        params = {**params, resource.next_token: token}


class Poller:
    def __init__(self, scheduler: Scheduler, interval: float, fresh_gap: float = 1.0) -> None:
        self.scheduler = scheduler
        self.clock = scheduler.clock
        self.interval = interval
        self.fresh_gap = fresh_gap
        self._groups: dict[GroupKey, Group] = {}
        # Describe requests made, by resource (a test and benchmark figure).
        self.polls: dict[str, int] = {}
        scheduler.handle(Wait, self.add)

    def add(self, ticket: Ticket, wait: Wait) -> None:
        if wait.resource not in RESOURCES:
            ticket.fail(WaitFailed(f"cannot wait for unknown resource {wait.resource!r}"))
            return
        caller = ticket.task.caller
        key = (caller.account, caller.region, wait.resource)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = Group(key)
        entry = WaitEntry(ticket, wait, self.clock.now() + wait.timeout)
        group.entries.append(entry)
        group.fresh.append(entry)
        if group.soon is None:
            when = max(self.clock.now(), group.last_fresh + self.fresh_gap)
            group.soon = self.scheduler.at(when, lambda: self._round(group, fresh=True))
        if group.periodic is None and not group.outstanding:
            self._schedule_periodic(group, self.clock.now())

    def _schedule_periodic(self, group: Group, start: float) -> None:
        group.periodic = self.scheduler.at(start + self.interval,
                                           lambda: self._round(group, fresh=False))

    def _round(self, group: Group, fresh: bool) -> None:
        now = self.clock.now()
        group.entries = [e for e in group.entries if not e.ticket.done]
        if fresh:
            group.soon, group.last_fresh = None, now
            entries = [e for e in group.fresh if not e.ticket.done]
        else:
            group.periodic = None
            entries = list(group.entries)
            group.round_started = now
        group.fresh = []
        if not entries:
            if not group.entries and not group.outstanding and group.soon is None:
                self._groups.pop(group.key, None)
            return
        resource = RESOURCES[group.key[2]]
        ids = list(dict.fromkeys(e.wait.resource_id for e in entries))
        for start in range(0, len(ids), resource.max_ids):
            chunk = ids[start:start + resource.max_ids]
            wanted = set(chunk)
            self._poll(group, resource, chunk,
                       [e for e in entries if e.wait.resource_id in wanted], periodic=not fresh)

    def _poll(self, group: Group, resource: Resource, ids: list[str],
              entries: list[WaitEntry], periodic: bool) -> None:
        account, region, _ = group.key
        self.polls[resource.name] = self.polls.get(resource.name, 0) + 1
        if periodic:
            group.outstanding += 1

        def done(records: Any, error: BaseException | None) -> None:
            if periodic:
                group.outstanding -= 1
            if isinstance(error, AwsError) and len(ids) > 1 and splittable(error):
                for one in ids:  # find the id that fails the chunk; the others go on
                    self._poll(group, resource, [one],
                               [e for e in entries if e.wait.resource_id == one], periodic)
            elif isinstance(error, AwsError) and error.code in MISSING_CODES:
                self._resolve(entries, {})
            elif error is not None:
                for entry in entries:
                    entry.ticket.fail(WaitFailed(
                        f"{entry.wait.what or entry.wait.resource}: could not describe "
                        f"{entry.wait.resource_id}: {error}"))
            else:
                self._resolve(entries, records)
            self._next_round(group)

        caller = Caller(account, region, target_key=f"poll:{resource.name}")
        self.scheduler.spawn(f"poll {resource.name} ({len(ids)})", describe(resource, ids),
                             caller, done)

    def _next_round(self, group: Group) -> None:
        if group.outstanding or group.periodic is not None:
            return
        if any(not e.ticket.done for e in group.entries):
            self._schedule_periodic(group, group.round_started)
        elif group.soon is None:
            self._groups.pop(group.key, None)

    def _resolve(self, entries: list[WaitEntry], records: Mapping[str, Record]) -> None:
        now = self.clock.now()
        for entry in entries:
            if entry.ticket.done:
                continue
            wait = entry.wait
            record = records.get(wait.resource_id)
            try:
                if wait.until(record):
                    entry.ticket.resolve(record)
                    continue
                reason = wait.failed(record)
            except Exception as exc:  # a bug in the action's predicate fails its step
                entry.ticket.fail(exc)
                continue
            if reason:
                entry.ticket.fail(WaitFailed(f"{wait.what or wait.resource}: {reason}"))
            elif now >= entry.deadline:
                entry.ticket.fail(WaitTimeout(f"timed out after {format_duration(wait.timeout)} "
                                              f"waiting for {wait.what or wait.resource}", record))
