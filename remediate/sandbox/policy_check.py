"""The sandbox as IAM: each request judged against the caller's policy before it runs.

``Sandbox.enforce_policy(policy)`` makes every request, DryRun ones included (AWS
checks permissions before it answers DryRunOperation), authorize what it names
(:mod:`remediate.sandbox.iam_context`) under ``policy`` (:mod:`remediate.sandbox.iam_eval`);
one resource not allowed refuses the request with AWS's error. Every decision is
recorded, so a test can show that a run made no call its policy would refuse.
"""

from __future__ import annotations

from typing import Any

from remediate.sandbox import errors
from remediate.sandbox.iam_context import authorizations
from remediate.sandbox.iam_eval import decide
from remediate.sandbox.state import Judged, World


def denial(world: World, response: Any, service: str, operation: str,
           dry_run: bool) -> errors.SandboxError | None:
    """The error refusing this request under ``world.policy`` (None: allowed); call with
    the world's lock held, after the request is logged."""
    assert world.policy is not None
    refusal: errors.SandboxError | None = None
    for authorization in authorizations(response, service, operation):
        decision = decide(world.policy, authorization)
        world.authorizations.append(Judged(
            service, operation, authorization.action, authorization.resource, decision,
            len(world.calls) - 1, dry_run, tuple(sorted(authorization.context.items()))))
        if decision != "allowed" and refusal is None:
            refusal = errors.not_authorized(service, authorization.action,
                                            authorization.resource,
                                            explicit=decision == "denied")
    return refusal
