"""How many targets' claims may be between their read and their write at once.

A claim is trusted only if its write went out soon after its read
(:mod:`remediate.executor.claiming`). Writes are paced to AWS's buckets: were every
target of a big run to read its claim at once, the writes of all but the first few
would wait their turn far past that bound, and those targets would be refused as if
another run had raced for them (250 WorkSpaces, one CreateTags a call at 5 a second:
181 refused). So a target enters a :class:`Window` before it reads and leaves it once
its write has gone out; the window holds as many as the write's bucket lets through in
:data:`SHARE` of the bound, so the last one in still writes in time, with the rest of
the bound left for retries after throttling. On EC2 (1,000 instances a CreateTags)
that is tens of thousands: the window never closes.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Generator
from typing import Any, Final

from remediate.actions.requests import Gate
from remediate.aws.apis import operation
from remediate.aws.ratelimit import RateLimiter
from remediate.executor.runtime import Gates

SHARE: Final = 0.5


def window_size(limiter: RateLimiter, service: str, write: str, bound: float) -> int:
    """Claims that the ``service`` ``write`` operation's bucket sends within ``SHARE`` of
    ``bound`` seconds, at its refill rate (at least one call's worth)."""
    op = operation(service, write)
    calls = int(limiter.spec(op.pacing_bucket).refill * bound * SHARE)
    return op.batch_limit * max(1, calls)


class Window:
    """At most ``size`` holders at once; the others wait their turn in order, parked on a
    gate of their own (which the holder leaving opens)."""

    _numbers = itertools.count()

    def __init__(self, gates: Gates, size: int) -> None:
        self.gates = gates
        self.size = size
        self.inside = 0
        self._waiting: deque[str] = deque()

    def enter(self, who: str) -> Generator[Any, Any, None]:
        if self.inside < self.size:
            self.inside += 1
            return
        gate = f"claim-window:{who}:{next(self._numbers)}"
        self._waiting.append(gate)
        try:
            yield Gate(gate)
        except BaseException:  # interrupted while waiting: it never got the place
            if gate in self._waiting:
                self._waiting.remove(gate)
            else:  # it was handed the place as it was interrupted: pass it on
                self.leave()
            raise
        # The holder that left handed its place over: ``inside`` is unchanged.

    def leave(self) -> None:
        if self._waiting:
            self.gates.open(self._waiting.popleft())
        else:
            self.inside -= 1
