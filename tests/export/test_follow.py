"""A child execution of a batch's Map Run, as a target's outcome."""

from __future__ import annotations

import json

import pytest

from remediate.export.follow import outcome


def child(status: str, error: str | None = None, cause: str | None = None) -> dict[str, object]:
    found: dict[str, object] = {"status": status, "input": json.dumps(
        {"target": {"id": "i-0abc", "region": "us-east-1", "account": "default"},
         "run": {"id": "r1"}})}
    if error:
        found.update(error=error, cause=cause)
    return found


@pytest.mark.parametrize(("execution", "expected"), [
    (child("SUCCEEDED"), ("i-0abc", "succeeded", None)),
    (child("FAILED", "remediate.RolledBack", "step repair failed: denied; rolled back"),
     ("i-0abc", "rolled_back", "step repair failed: denied; rolled back")),
    (child("FAILED", "remediate.Refused", "inspection: stop protection"),
     ("i-0abc", "refused", "inspection: stop protection")),
    (child("FAILED", "remediate.Failed", "step verify failed: still impaired"),
     ("i-0abc", "failed", "step verify failed: still impaired")),
    (child("TIMED_OUT"), ("i-0abc", "failed", "TIMED_OUT")),
    (child("ABORTED"), ("i-0abc", "failed", "ABORTED")),
])
def test_a_child_execution_gives_its_target_status_and_the_fail_cause(
        execution: dict[str, object], expected: tuple[str, str, str | None]) -> None:
    assert outcome(execution) == expected
