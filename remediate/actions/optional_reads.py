"""A read the caller may not be allowed to make: its answer, or None (then unknown)."""

from __future__ import annotations

from remediate.actions.requests import AwsError, Call, StepFailed
from remediate.actions.shared_answers import Steps
from remediate.aws.errors import ACCESS_DENIED_CODES


def optional(call: Call) -> Steps:
    """Send ``call``; None when the caller may not make it (the fact is then unknown); any
    other error fails the step."""
    try:
        return (yield call)
    except AwsError as exc:
        if exc.code in ACCESS_DENIED_CODES:
            return None
        raise StepFailed(f"{call.operation} failed: {exc}") from exc
