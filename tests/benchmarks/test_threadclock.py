"""Simulated time for threads that each sleep: it moves only when all of them sleep."""

from __future__ import annotations

import threading

import botocore.endpoint
import botocore.waiter

from fleetbench.threadclock import ThreadedVirtualClock, botocore_sleeps


def _crew(clock: ThreadedVirtualClock, *jobs: list[float]) -> list[tuple[int, float]]:
    """Threads that each sleep the given seconds in turn; (thread, time woken) in order."""
    woken: list[tuple[int, float]] = []
    lock = threading.Lock()

    def member(index: int, sleeps: list[float]) -> None:
        with clock.take_part():
            for seconds in sleeps:
                clock.sleep(seconds)
                with lock:
                    woken.append((index, clock.now()))

    threads = [threading.Thread(target=member, args=(i, job)) for i, job in enumerate(jobs)]
    clock.join(len(threads))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
    return woken


def test_each_thread_wakes_at_its_own_deadline_not_at_another_threads() -> None:
    clock = ThreadedVirtualClock()

    woken = _crew(clock, [15.0, 15.0, 15.0], [40.0], [5.0, 100.0])

    assert sorted(woken, key=lambda w: (w[1], w[0])) == [
        (2, 5.0), (0, 15.0), (0, 30.0), (1, 40.0), (0, 45.0), (2, 105.0)]
    assert clock.now() == 105.0


def test_time_waits_for_a_thread_that_is_busy() -> None:
    clock = ThreadedVirtualClock()
    busy = threading.Event()
    release = threading.Event()
    seen: list[float] = []

    def worker() -> None:
        with clock.take_part():
            busy.set()
            release.wait(timeout=10)  # a call in flight: not sleeping on the clock
            seen.append(clock.now())

    def sleeper() -> None:
        with clock.take_part():
            clock.sleep(60.0)

    threads = [threading.Thread(target=worker), threading.Thread(target=sleeper)]
    clock.join(2)
    for thread in threads:
        thread.start()
    busy.wait(timeout=10)
    assert clock.now() == 0.0  # the sleeper alone cannot move time
    release.set()
    for thread in threads:
        thread.join(timeout=10)
    assert seen == [0.0] and clock.now() == 60.0


def test_botocore_retry_and_waiter_sleeps_go_to_the_clock_while_installed() -> None:
    clock = ThreadedVirtualClock()
    clock.join()
    with clock.take_part(), botocore_sleeps(clock):
        botocore.endpoint.time.sleep(3.0)
        botocore.waiter.time.sleep(15.0)
        assert clock.now() == 18.0
    assert botocore.endpoint.time.sleep is not clock.sleep
    assert botocore.waiter.time.sleep is not clock.sleep
