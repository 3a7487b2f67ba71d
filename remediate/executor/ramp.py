"""The ramp after the canary (``guards.rollout: ramp``): in-flight caps opened by results.

Batches are barriers: batch *j* starts when the last target of batch *j-1* has
finished, so every stage waits out its slowest target's whole critical path
(the first results of a stage are in long before its last). The ramp keeps the
two promises a batch rollout makes and drops the wait:

- never more targets with an unknown outcome than the batch being run would have
  (the sizes after the canary are caps on targets *in flight*);
- a larger cap only once as many results are in as the batches would have waited
  for (the cap of size *j* opens after the canary and sizes 1..j-1 have results).

Each result frees its slot at once, so a stage's early finishers let the next
targets start while its stragglers are still waiting for AWS. The failure budget
is judged as each result arrives (:mod:`remediate.executor.rollout`).
"""

from __future__ import annotations

from collections.abc import Sequence

from remediate.language.model import BatchSize


class Ramp:
    """How many targets may be in flight, given how many results are in."""

    def __init__(self, sizes: Sequence[BatchSize], total: int, results: int = 0) -> None:
        """``sizes``: the batch sizes after the canary (percentages of ``total``);
        ``results``: results already in beyond the canary's (a resumed run's)."""
        self.steps: list[tuple[int, int]] = []  # (results needed, cap)
        needed = 0
        for size in sizes:
            cap = max(1, size.resolve(total))
            self.steps.append((needed, cap))
            needed += cap
        self.results = results
        self.stage = self._stage()

    @property
    def cap(self) -> int:
        """The most targets in flight at once, now."""
        return self.steps[self.stage][1]

    def record(self) -> bool:
        """Count one result; True when it opened a larger cap."""
        self.results += 1
        stage = self._stage()
        grew = stage != self.stage and self.steps[stage][1] > self.cap
        self.stage = stage
        return grew

    def _stage(self) -> int:
        return max(i for i, (needed, _) in enumerate(self.steps) if needed <= self.results)
