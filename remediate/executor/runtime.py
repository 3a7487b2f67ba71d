"""What actions share across a run: gates and run services (the rescue pool).

A gate, once opened, stays open (a later ``Gate(key)`` passes at once). If the
run stalls with tasks parked on gates nothing can open any more, those waits
fail rather than hang the run.

A service is created once per run on first use, like :class:`SyncRuntime` does;
the executor remembers each (account, Region) it was used from, journals it, and
calls its ``finish`` once per place at the end of the run (and of a resumed run,
which re-creates the services the interrupted run used so their leftovers are
cleaned up too).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from remediate.actions.contract import RunService
from remediate.actions.requests import Gate, Sleep, WaitFailed
from remediate.clock import Clock
from remediate.executor.scheduler import Scheduler, Ticket
from remediate.journal import Journal


def handle_sleeps(scheduler: Scheduler) -> None:
    """``yield Sleep(s)``: a timer on the scheduler, no thread."""

    def sleep(ticket: Ticket, request: Sleep) -> None:
        scheduler.at(scheduler.clock.now() + max(0.0, request.seconds),
                     lambda: ticket.resolve(None))

    scheduler.handle(Sleep, sleep)


class Gates:
    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler
        self._open: set[str] = set()
        # key -> parked tickets (a dict as an ordered set: a timed-out one leaves in O(1))
        self._parked: dict[str, dict[Ticket, None]] = {}
        scheduler.handle(Gate, self.park)

    def park(self, ticket: Ticket, gate: Gate) -> None:
        if gate.key in self._open:
            ticket.resolve(None)
            return
        self._parked.setdefault(gate.key, {})[ticket] = None
        if gate.timeout is not None:
            # The first of the two answers wins (Ticket.resolve); the other is dropped.
            self._scheduler.at(self._scheduler.clock.now() + max(0.0, gate.timeout),
                               lambda: self._time_out(gate.key, ticket))

    def _time_out(self, key: str, ticket: Ticket) -> None:
        parked = self._parked.get(key, {})
        parked.pop(ticket, None)
        if not parked:
            self._parked.pop(key, None)
        ticket.resolve(None)

    def open(self, key: str) -> None:
        self._open.add(key)
        for ticket in self._parked.pop(key, {}):
            ticket.resolve(None)

    def fail_parked(self) -> None:
        """Nothing left running could open these gates: fail their waits."""
        parked, self._parked = self._parked, {}
        for key, tickets in parked.items():
            for ticket in tickets:
                ticket.fail(WaitFailed(f"gate {key} was never opened (nothing left running "
                                       "could open it)"))


def class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def load_class(path: str) -> type[RunService]:
    module, _, name = path.partition(":")
    found: Any = importlib.import_module(module)
    for part in name.split("."):
        found = getattr(found, part)
    if not (isinstance(found, type) and issubclass(found, RunService)):
        raise TypeError(f"{path} is not a RunService")
    return found


@dataclass
class Services:
    run_id: str
    journal: Journal
    instances: dict[type, RunService] = field(default_factory=dict)
    # (account, region, class) in order of first use: where finish() must run.
    places: list[tuple[str, str, type[RunService]]] = field(default_factory=list)

    def get(self, cls: type[Any], account: str, region: str) -> Any:
        service = self.instances.get(cls)
        if service is None:
            service = self.instances[cls] = cls(self.run_id)
        if (account, region, cls) not in self.places:
            self.places.append((account, region, cls))
            self.journal.service_used(self.run_id, account, region, class_path(cls))
        return service

    def restore(self) -> None:
        """Re-create the services a previous process of this run used (resume)."""
        for account, region, path in self.journal.services(self.run_id):
            self.get(load_class(path), account, region)


@dataclass
class TargetRuntime:
    """The :class:`~remediate.actions.contract.Runtime` one target's actions see."""

    clock: Clock
    gates: Gates
    services: Services
    account: str
    region: str

    def open_gate(self, key: str) -> None:
        self.gates.open(key)

    def service(self, cls: type[Any]) -> Any:
        return self.services.get(cls, self.account, self.region)
