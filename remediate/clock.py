"""Clocks: the one place the tool (and the sandbox) reads time and waits.

Every wait in remediate goes through a :class:`Clock`, so the same code runs
against AWS in real time, against the sandbox faster than real time
(:class:`ScaledClock`), or as a discrete-event simulation (:class:`VirtualClock`)
where tests and benchmarks never sleep for real.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta


class Clock(ABC):
    """Seconds on a monotonic scale, plus a wall-clock for reports."""

    @abstractmethod
    def now(self) -> float:
        """Monotonic seconds (simulated seconds for simulated clocks)."""

    @abstractmethod
    def sleep_until(self, deadline: float, wake: threading.Event | None = None) -> None:
        """Block until ``deadline`` (on this clock's scale) or until ``wake`` is set."""

    def sleep(self, seconds: float) -> None:
        self.sleep_until(self.now() + max(0.0, seconds))

    def wall(self) -> datetime:
        """Wall-clock time, in UTC, consistent with :meth:`now`."""
        return datetime.now(UTC)


class RealClock(Clock):
    def now(self) -> float:
        return time.monotonic()

    def sleep_until(self, deadline: float, wake: threading.Event | None = None) -> None:
        remaining = deadline - self.now()
        if remaining <= 0:
            return
        if wake is None:
            time.sleep(remaining)
        else:
            wake.wait(remaining)


class ScaledClock(Clock):
    """Real time multiplied by ``factor``: with factor 60 an hour passes in a minute."""

    def __init__(self, factor: float, start: float = 0.0) -> None:
        if factor <= 0:
            raise ValueError("clock factor must be positive")
        self.factor = factor
        self._origin_real = time.monotonic()
        self._origin_sim = start
        self._wall_origin = datetime.now(UTC)

    def now(self) -> float:
        return self._origin_sim + (time.monotonic() - self._origin_real) * self.factor

    def sleep_until(self, deadline: float, wake: threading.Event | None = None) -> None:
        remaining = (deadline - self.now()) / self.factor
        if remaining <= 0:
            return
        if wake is None:
            time.sleep(remaining)
        else:
            wake.wait(remaining)

    def wall(self) -> datetime:
        return self._wall_origin + timedelta(seconds=self.now() - self._origin_sim)


class VirtualClock(Clock):
    """Simulated time that only moves when the one sleeper asks it to.

    ``sleep_until`` jumps straight to the deadline unless ``wake`` is already
    set. Safe when a single thread (the executor's scheduler) does all the
    waiting, which is how remediate is built; other threads only read ``now``.
    """

    def __init__(self, start: float = 0.0, wall_start: datetime | None = None) -> None:
        self._now = start
        self._start = start
        self._lock = threading.Lock()
        self._wall_origin = wall_start or datetime(2024, 7, 19, 5, 30, tzinfo=UTC)

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += max(0.0, seconds)

    def sleep_until(self, deadline: float, wake: threading.Event | None = None) -> None:
        if wake is not None and wake.is_set():
            return
        with self._lock:
            if deadline > self._now:
                self._now = deadline

    def wall(self) -> datetime:
        return self._wall_origin + timedelta(seconds=self.now() - self._start)
