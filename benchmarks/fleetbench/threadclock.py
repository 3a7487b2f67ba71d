"""Simulated time for a script whose worker threads each sleep on their own.

remediate's :class:`~remediate.clock.VirtualClock` jumps to any deadline it is asked
for: right when one scheduler thread does all the waiting, wrong for a script of N
threads that each poll their own instance (the first sleeper would move time for
everyone). :class:`ThreadedVirtualClock` moves time only when every thread taking
part sleeps, and then only to the earliest deadline among them, waking exactly the
threads due: a discrete-event simulation of N threads. A thread in an API call is
not sleeping, so (as on the VirtualClock) a call takes no simulated time.

botocore sleeps through the ``time`` module (standard retry mode's backoff in
``botocore.endpoint``, waiters' delay in ``botocore.waiter``);
:func:`botocore_sleeps` sends those sleeps to a clock while a run lasts.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager

from remediate.clock import Clock

_BOTOCORE_MODULES = ("botocore.endpoint", "botocore.waiter")


class ThreadedVirtualClock(Clock):
    """Virtual time shared by the threads that :meth:`take_part`."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._cond = threading.Condition()
        self._members = 0
        self._sleepers: list[tuple[float, int]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        with self._cond:
            return self._now

    def sleep_until(self, deadline: float, wake: threading.Event | None = None) -> None:
        with self._cond:
            if deadline <= self._now or (wake is not None and wake.is_set()):
                return
            entry = (deadline, next(self._seq))
            heapq.heappush(self._sleepers, entry)
            self._advance()
            while self._now < deadline:
                self._cond.wait()

    def join(self, threads: int = 1) -> None:
        """``threads`` more threads take part (call before starting them, so time
        cannot move before they run)."""
        with self._cond:
            self._members += threads

    def leave(self) -> None:
        """The calling thread is done: time no longer waits for it."""
        with self._cond:
            self._members -= 1
            self._advance()

    @contextmanager
    def take_part(self) -> Iterator[None]:
        """Run the block as a member already counted by :meth:`join`; leave at its end."""
        try:
            yield
        finally:
            self.leave()

    def _advance(self) -> None:
        """With every member asleep, jump to the earliest deadline and wake those due.
        Woken sleepers leave the heap here, so a woken thread that has not run yet
        is not counted as asleep."""
        if not self._sleepers or len(self._sleepers) < self._members:
            return
        self._now = max(self._now, self._sleepers[0][0])
        while self._sleepers and self._sleepers[0][0] <= self._now:
            heapq.heappop(self._sleepers)
        self._cond.notify_all()



def join(clock: Clock, threads: int = 1) -> None:
    """:meth:`ThreadedVirtualClock.join` on such a clock; nothing on a clock that moves
    by itself (a :class:`~remediate.clock.ScaledClock`)."""
    if isinstance(clock, ThreadedVirtualClock):
        clock.join(threads)


@contextmanager
def take_part(clock: Clock) -> Iterator[None]:
    """:meth:`ThreadedVirtualClock.take_part` on such a clock, else just the block."""
    if isinstance(clock, ThreadedVirtualClock):
        with clock.take_part():
            yield
    else:
        yield


@contextmanager
def botocore_sleeps(clock: Clock) -> Iterator[None]:
    """botocore's retry backoff and waiter delays sleep on ``clock`` in the block."""
    import importlib
    import time

    shim = types.SimpleNamespace(**{name: getattr(time, name) for name in dir(time)
                                    if not name.startswith("__")})
    shim.sleep = clock.sleep
    modules = [importlib.import_module(name) for name in _BOTOCORE_MODULES]
    saved = [getattr(module, "time") for module in modules]  # noqa: B009
    for module in modules:
        setattr(module, "time", shim)  # noqa: B010
    try:
        yield
    finally:
        for module, original in zip(modules, saved, strict=True):
            setattr(module, "time", original)  # noqa: B010
