"""Batch sizes, the failure budget and max_targets."""

from __future__ import annotations

import pytest

from remediate.executor.guards import (
    BatchResult,
    FailureBudget,
    GuardViolation,
    batch_sizes,
    check_max_targets,
)
from remediate.language.model import BatchSize, Guards


def test_canary_then_growing_batches_with_the_last_size_repeating() -> None:
    batches = (BatchSize(count=1), BatchSize(percent=5), BatchSize(percent=25))

    assert batch_sizes(batches, 100) == [1, 5, 25, 25, 25, 19]
    assert batch_sizes(batches, 3) == [1, 1, 1]
    assert batch_sizes((BatchSize(percent=100),), 7) == [7]
    assert batch_sizes(batches, 0) == []


def test_the_budget_is_spent_by_the_first_failure_beyond_the_allowance() -> None:
    budget = FailureBudget(total=20, percent=10)  # 2 may fail

    assert [budget.record(s) for s in ("succeeded", "failed", "rolled_back", "refused")] == [
        False, False, False, False]
    assert not budget.exhausted
    assert budget.record("failed") is True
    assert budget.exhausted and budget.record("failed") is False
    assert (budget.failed, budget.allowed) == (4, 2)


def test_zero_percent_allows_no_failure_and_a_hundred_any() -> None:
    strict, lax = FailureBudget(10, 0), FailureBudget(10, 100)
    strict.record("failed")
    for _ in range(10):
        lax.record("failed")

    assert strict.exhausted and not lax.exhausted


def test_max_targets_refuses_the_run() -> None:
    check_max_targets(Guards(max_targets=5), 5)
    with pytest.raises(GuardViolation) as raised:
        check_max_targets(Guards(max_targets=5), 6)
    assert str(raised.value) == ("6 targets selected, more than guards.max_targets (5); "
                                 "narrow the target selector or raise max_targets")


def test_a_batch_result_counts_its_outcomes() -> None:
    result = BatchResult(0, {"a": "succeeded", "b": "rolled_back", "c": "failed"}, remaining=7)
    assert (result.succeeded, result.failed, result.remaining) == (1, 2, 7)
