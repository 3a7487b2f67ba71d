"""Run services (one per run, finished once per place, re-created on resume) and gates."""

from __future__ import annotations

import pytest

from remediate.actions.contract import RunService
from remediate.actions.requests import Gate
from remediate.clock import VirtualClock
from remediate.executor.runtime import Gates, Services, class_path, handle_sleeps, load_class
from remediate.executor.scheduler import Caller, Scheduler, TaskGen
from remediate.journal import Journal


class Pool(RunService):
    pass


def test_a_service_is_created_once_and_remembered_per_place() -> None:
    journal = Journal.memory()
    services = Services("run-1", journal)

    first = services.get(Pool, "default", "us-east-1")
    again = services.get(Pool, "default", "eu-west-1")

    assert first is again and first.run_id == "run-1"
    assert services.places == [("default", "us-east-1", Pool), ("default", "eu-west-1", Pool)]
    assert journal.services("run-1") == [("default", "us-east-1", class_path(Pool)),
                                         ("default", "eu-west-1", class_path(Pool))]


def test_a_resumed_run_re_creates_the_services_it_used() -> None:
    journal = Journal.memory()
    Services("run-1", journal).get(Pool, "default", "us-east-1")

    resumed = Services("run-1", journal)
    resumed.restore()

    assert resumed.places == [("default", "us-east-1", Pool)]
    assert isinstance(resumed.instances[Pool], Pool)


def test_only_run_services_are_loaded_back() -> None:
    assert load_class(class_path(Pool)) is Pool
    with pytest.raises(TypeError, match=r"^remediate\.journal:Journal is not a RunService$"):
        load_class("remediate.journal:Journal")


def _waiter(gate: Gate, seen: list[tuple[str, float]], clock: VirtualClock) -> TaskGen:
    yield gate
    seen.append((gate.key, clock.now()))


def test_a_gate_with_a_timeout_returns_when_opened_or_when_it_expires() -> None:
    clock = VirtualClock()
    scheduler = Scheduler(clock, workers=1)
    gates = Gates(scheduler)
    handle_sleeps(scheduler)
    seen: list[tuple[str, float]] = []
    caller = Caller("default", "us-east-1", "t")
    for gate in (Gate("opened", timeout=30), Gate("expires", timeout=30)):
        scheduler.spawn(gate.key, _waiter(gate, seen, clock), caller, lambda _r, _e: None)
    scheduler.at(10, lambda: gates.open("opened"))

    scheduler.run()
    scheduler.close()

    assert seen == [("opened", 10.0), ("expires", 30.0)]
