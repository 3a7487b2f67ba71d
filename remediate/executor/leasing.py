"""The executor's shared leases (``--lock-table``): a target worked on by one run at a time,
across machines, besides the journal's lock on this one.

Lease keys name the target by the real AWS account id (STS GetCallerIdentity), not
by the account's label in the playbook or the profile: two operators whose
profiles are called differently still collide on the same instance. The
scheduler renews the leases while the run lives (a keepalive pump), and a
thread does while the question after the canary batch blocks the scheduler; the
executor releases them at the end, after failures and Ctrl-C too. If the
executor itself crashes, the leases of targets it had not finished are left to
expire (or to be taken back by ``remediate resume`` on the same host), like the
journal's locks: a target may be mid-way. A run on Step Functions drives the
same leases without a scheduler (:meth:`TargetLeases.watch`, and
:meth:`TargetLeases.bind_execution` to name the execution working on them: see
:mod:`remediate.cli.execution_leases`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TypeVar

from remediate.actions.contract import Target
from remediate.executor.calls import ClientLookup
from remediate.executor.events import EventBus, Notice
from remediate.executor.scheduler import Scheduler
from remediate.journal.records import LockHolder, LockOutcome
from remediate.leases import LeaseTable

T = TypeVar("T")
R = TypeVar("R")


def account_ids(clients: ClientLookup, targets: Iterable[Target]) -> dict[str, str]:
    """Account label -> AWS account id, one GetCallerIdentity per account."""
    found: dict[str, str] = {}
    for target in targets:
        if target.account not in found:
            sts = clients(target.account, target.region, "sts")
            found[target.account] = str(sts.get_caller_identity()["Account"])
    return found


def lease_key(target: Target, account_id: str) -> str:
    return f"{account_id}/{target.region}/{target.id}"


class TargetLeases:
    """A :class:`LeaseTable` seen through target keys (``account-label/region/id``)."""

    def __init__(self, table: LeaseTable, clients: ClientLookup) -> None:
        self.table = table
        self.clients = clients
        self._by_lease: dict[str, str] = {}  # lease key -> target key
        self._reported_lost: set[str] = set()
        self._bus: EventBus | None = None
        self._lost: dict[str, str] | None = None
        self._consequence = ""

    @property
    def name(self) -> str:
        return self.table.table

    def lock(self, run_id: str, targets: Sequence[Target], started_at: str) -> LockOutcome:
        """Lease every target; the outcome names targets, like the journal's lock."""
        if not targets:
            return LockOutcome((), {}, {})
        ids = account_ids(self.clients, targets)
        wanted = {lease_key(t, ids[t.account]): t.key for t in targets}
        self._by_lease.update(wanted)
        outcome = self.table.lock_targets(run_id, list(wanted), started_at)
        return LockOutcome(tuple(wanted[k] for k in outcome.acquired),
                           self._holders(outcome.refused), self._holders(outcome.taken_over))

    def _holders(self, found: Mapping[str, LockHolder]) -> dict[str, LockHolder]:
        return {self._by_lease[k]: replace(h, target_key=self._by_lease[k])
                for k, h in found.items()}

    def attach(self, scheduler: Scheduler, bus: EventBus, lost: dict[str, str]) -> None:
        """Renew while the scheduler runs. A lease lost (renewed too late: another run
        took the target over) is said on ``bus`` and filed in ``lost`` (target key ->
        why), which stops the target before its next step."""
        self.watch(bus, lost)
        scheduler.add_pump(self.pump, keepalive=True)

    def watch(self, bus: EventBus, lost: dict[str, str],
              consequence: str = "no further step starts on it") -> None:
        """Say each lease lost on ``bus`` (with ``consequence``: what becomes of its target)
        and file it in ``lost``, whoever drives :meth:`pump`."""
        self._bus = bus
        self._lost = lost
        self._consequence = consequence

    def bind_execution(self, target_keys: Iterable[str], execution_arn: str) -> None:
        """Name the Step Functions execution about to work on these targets in their
        leases (see :meth:`LeaseTable.bind_execution`)."""
        wanted = set(target_keys)
        self.table.bind_execution((k for k, t in self._by_lease.items() if t in wanted),
                                  execution_arn)
        self._report_lost()

    def pump(self) -> float | None:
        when = self.table.pump()
        self._report_lost()
        return when

    def _report_lost(self) -> None:
        lost = sorted(self.table.lost - self._reported_lost)
        if not lost:
            return
        self._reported_lost.update(lost)
        names = [self._by_lease.get(k, k) for k in lost]
        why = f"lost its lease in lock table {self.name}: another run may work on it now"
        if self._lost is not None:
            self._lost.update(dict.fromkeys(names, why))
        if self._bus is not None:
            self._bus.publish(Notice("error", f"{', '.join(names)}: {why}; "
                                              f"{self._consequence}"))

    def renewing(self, wait: Callable[[T], R]) -> Callable[[T], R]:
        """``wait`` blocks the scheduler (the question after the canary batch, which a
        human may take minutes to answer): renew from a thread meanwhile."""
        def waiting(arg: T) -> R:
            stop = threading.Event()
            thread = threading.Thread(target=self._renew_until, args=(stop,), daemon=True,
                                      name="remediate-leases")
            thread.start()
            try:
                return wait(arg)
            finally:
                stop.set()
                thread.join()

        return waiting

    def _renew_until(self, stop: threading.Event) -> None:
        clock = self.table.clock
        while True:
            clock.sleep_until(clock.now() + self.table.renew_every, stop)
            if stop.is_set():
                return
            try:
                self.pump()
            except Exception as exc:  # a thread's error would be lost: say it
                if self._bus is not None:
                    self._bus.publish(Notice("error", f"could not renew the leases in lock "
                                                      f"table {self.name}: {exc}"))
                return

    def held(self) -> set[str]:
        """The target keys whose leases this run holds."""
        return {self._by_lease[k] for k in self.table.held if k in self._by_lease}

    def release(self, target_keys: Iterable[str] | None = None) -> None:
        """Give back the leases of ``target_keys`` (default: all this run holds)."""
        if target_keys is None:
            self.table.release()
            return
        wanted = set(target_keys)
        self.table.release(k for k, t in self._by_lease.items() if t in wanted)
