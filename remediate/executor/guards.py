"""Blast-radius guards: how many targets, in which batches, and how many may fail.

The failure budget counts ``failed`` and ``rolled_back`` targets against
``max_failure_percent`` of the targets that passed pre-flight; once more than
that have failed, no new target starts (:mod:`remediate.executor.rollout`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from remediate.language.model import BatchSize, Guards

FAILED = frozenset({"failed", "rolled_back"})


class GuardViolation(ValueError):
    """The run must not start (too many targets)."""


def check_max_targets(guards: Guards, count: int) -> None:
    if guards.max_targets is not None and count > guards.max_targets:
        raise GuardViolation(
            f"{count} targets selected, more than guards.max_targets ({guards.max_targets}); "
            "narrow the target selector or raise max_targets")


def batch_sizes(batches: Sequence[BatchSize], total: int) -> list[int]:
    """Sizes of the batches ``total`` targets go in; the last size repeats."""
    sizes: list[int] = []
    left = total
    while left > 0:
        spec = batches[min(len(sizes), len(batches) - 1)]
        size = max(1, min(spec.resolve(total), left))
        sizes.append(size)
        left -= size
    return sizes


class FailureBudget:
    def __init__(self, total: int, percent: float, failed: int = 0) -> None:
        self.allowed = int(total * percent / 100.0)
        self.failed = failed

    @property
    def exhausted(self) -> bool:
        return self.failed > self.allowed

    def record(self, status: str | None) -> bool:
        """Count a finished target; True when this one spent the budget."""
        if status not in FAILED:
            return False
        before = self.exhausted
        self.failed += 1
        return self.exhausted and not before


@dataclass(frozen=True)
class BatchResult:
    """What ``confirm`` sees after the canary batch."""

    index: int
    statuses: Mapping[str, str]  # target key -> status
    remaining: int

    @property
    def succeeded(self) -> int:
        return sum(1 for s in self.statuses.values() if s == "succeeded")

    @property
    def failed(self) -> int:
        return sum(1 for s in self.statuses.values() if s in FAILED)
