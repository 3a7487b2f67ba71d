"""The scheduler: one thread, virtual time, gates, interrupts, I/O on a pool."""

from __future__ import annotations

import threading
from typing import Any

from executor_support import FakeAws, Harness, one

from remediate.actions.requests import Call, Gate, Sleep, WaitFailed
from remediate.clock import ScaledClock, VirtualClock
from remediate.executor.scheduler import Caller, Expired, Scheduler


def test_thousands_of_sleeping_tasks_cost_no_real_time() -> None:
    harness = Harness(FakeAws(lambda *_: {}))
    woke: list[float] = []

    def nap(seconds: float) -> Any:
        yield Sleep(seconds)
        woke.append(harness.clock.now())

    harness.run(*(nap(n % 600) for n in range(5000)))

    assert sorted(woke) == woke  # in time order
    assert woke[-1] == 599.0 and len(woke) == 5000


def test_virtual_time_stands_still_while_a_call_is_in_flight() -> None:
    release = threading.Event()
    seen: list[float] = []

    def handler(*_: Any) -> dict[str, Any]:
        release.wait(5.0)
        return {}

    harness = Harness(FakeAws(handler))

    def sleeper() -> Any:
        yield Sleep(30.0)
        seen.append(harness.clock.now())

    def caller() -> Any:
        yield Call("ec2", "DescribeVolumes", {})
        seen.append(harness.clock.now())

    timer = threading.Timer(0.2, release.set)
    timer.start()
    harness.run(sleeper(), caller())

    assert seen == [0.0, 30.0]


def test_a_gate_wakes_its_parkers_and_stays_open() -> None:
    harness = Harness(FakeAws(lambda *_: {}))
    order: list[str] = []

    def parked(name: str) -> Any:
        yield Gate("rescue-ready")
        order.append(name)

    def opener() -> Any:
        yield Sleep(5.0)
        order.append("open")
        harness.gates.open("rescue-ready")

    def late() -> Any:
        yield Sleep(10.0)
        yield Gate("rescue-ready")
        order.append("late")

    harness.run(parked("a"), parked("b"), opener(), late())

    assert order == ["open", "a", "b", "late"]


def test_gates_nothing_can_open_fail_instead_of_hanging() -> None:
    harness = Harness(FakeAws(lambda *_: {}))

    [(_, error)] = harness.run(one(Gate("never")))

    assert isinstance(error, WaitFailed)
    assert str(error) == ("gate never was never opened (nothing left running could open it)")


def test_a_timeout_guard_does_not_hide_a_stall() -> None:
    harness = Harness(FakeAws(lambda *_: {}))
    scheduler = harness.scheduler
    results: list[Any] = []

    def task() -> Any:
        try:
            yield Gate("never")
        except Exception as exc:
            results.append(type(exc).__name__)

    spawned = scheduler.spawn("t", task(), Caller("a", "r", "k"), lambda *_: None)
    scheduler.at(3600.0, lambda: scheduler.interrupt(spawned, Expired(3600)), guard=True)
    scheduler.run()

    assert results == ["WaitFailed"]
    assert harness.clock.now() == 0.0


def test_an_interrupt_reaches_a_parked_task_and_its_late_answer_is_dropped() -> None:
    harness = Harness(FakeAws(lambda *_: {}))
    scheduler = harness.scheduler
    got: list[str] = []

    def task() -> Any:
        try:
            yield Sleep(100.0)
            got.append("slept")
        except Expired as exc:
            got.append(str(exc))
            yield Sleep(200.0)
            got.append(f"then slept until {harness.clock.now():g}")

    spawned = scheduler.spawn("t", task(), Caller("a", "r", "k"), lambda *_: None)
    scheduler.at(10.0, lambda: scheduler.interrupt(spawned, Expired(10)))
    scheduler.run()

    assert got == ["timed out after 10s (the step's timeout)", "then slept until 210"]


def test_a_task_yielding_something_unknown_gets_a_type_error() -> None:
    harness = Harness(FakeAws(lambda *_: {}))

    [(_, error)] = harness.run(one("not a request"))

    assert isinstance(error, TypeError)
    assert str(error) == "a task may not yield 'not a request'"


def test_an_exception_in_the_io_is_delivered_to_the_scheduler_thread() -> None:
    scheduler = Scheduler(Harness(FakeAws(lambda *_: {})).clock, workers=1)
    seen: list[tuple[Any, str]] = []

    def boom() -> Any:
        raise OSError("socket closed")

    scheduler.io(boom, lambda result, error: seen.append((result, repr(error))))
    scheduler.run()
    scheduler.close()

    assert seen == [(None, "OSError('socket closed')")]


def _answers_in_order_of(clock: VirtualClock | ScaledClock) -> list[str]:
    """Two calls sent together; the first one sent answers last (it waits for the
    second's thread). The order in which the scheduler hands their answers over."""
    scheduler = Scheduler(clock, workers=2)
    second_answered = threading.Event()
    told: list[str] = []

    def first() -> str:
        second_answered.wait(5.0)
        return "first"

    def second() -> str:
        second_answered.set()
        return "second"

    def tell(result: Any, error: BaseException | None) -> None:
        told.append(result)

    def sender() -> Any:
        scheduler.io(first, tell)
        scheduler.io(second, tell)
        yield Sleep(1.0)

    scheduler.handle(Sleep, lambda ticket, sleep: scheduler.at(
        clock.now() + sleep.seconds, lambda: ticket.resolve(None)))
    scheduler.spawn("sender", sender(), Caller("111122223333", "us-east-1", "t"),
                    lambda *_: None)
    scheduler.run()
    scheduler.close()
    return told


def test_on_a_simulated_clock_answers_come_in_the_order_the_calls_were_sent() -> None:
    # Lockstep: which targets' calls meet in one merged request must not depend on
    # which I/O thread finished first, or two runs of one fleet (and plan's rehearsal)
    # would make different requests.
    assert _answers_in_order_of(VirtualClock()) == ["first", "second"]


def test_on_a_moving_clock_answers_come_as_they_arrive() -> None:
    assert _answers_in_order_of(ScaledClock(1000.0)) == ["second", "first"]
