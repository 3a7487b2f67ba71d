"""Deadlines on the sandbox clock, applied lazily when a request arrives."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

Action = Callable[[float], None]
"""Called with the event's own deadline (not the time it was noticed)."""


@dataclass(order=True)
class _Event:
    deadline: float
    seq: int
    key: Hashable = field(compare=False)
    generation: int = field(compare=False)
    action: Action = field(compare=False)


class Timeline:
    """A heap of pending state changes; the latest one scheduled for a key wins."""

    def __init__(self) -> None:
        self._heap: list[_Event] = []
        self._seq = itertools.count()
        self._generation: dict[Hashable, int] = {}

    def schedule(self, key: Hashable, deadline: float, action: Action) -> None:
        """Run ``action(deadline)`` once the clock passes ``deadline``.

        Scheduling again for the same ``key`` cancels the earlier event.
        """
        generation = self._generation.get(key, 0) + 1
        self._generation[key] = generation
        heapq.heappush(self._heap, _Event(deadline, next(self._seq), key, generation, action))

    def also(self, key: Hashable, deadline: float, action: Action) -> None:
        """Like :meth:`schedule`, but does not cancel earlier events for ``key``."""
        generation = self._generation.setdefault(key, 0)
        heapq.heappush(self._heap, _Event(deadline, next(self._seq), key, generation, action))

    def cancel(self, key: Hashable) -> None:
        self._generation[key] = self._generation.get(key, 0) + 1

    def run_due(self, now: float) -> int:
        """Apply every event whose deadline is at or before ``now``, in order."""
        applied = 0
        while self._heap and self._heap[0].deadline <= now:
            event = heapq.heappop(self._heap)
            if self._generation.get(event.key) != event.generation:
                continue
            event.action(event.deadline)
            applied += 1
        return applied

    def next_deadline(self) -> float | None:
        live = [e.deadline for e in self._heap if self._generation.get(e.key) == e.generation]
        return min(live) if live else None
