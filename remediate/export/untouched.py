"""A step failure that left the target untouched, on Step Functions: the same end as the
local engine's (:meth:`remediate.executor.target_runner.TargetRunner._steps`).

A step whose program fails with kind ``UNTOUCHED`` (``ec2.stop`` whose capacity could not
be held, say) declares it changed nothing on the target. Its Parallel state catches that
error first: if no earlier step of an action that changes the target ran (succeeded or
failed; a backup snapshot is made beside the target and does not count), the target
ends ``remediate.Refused`` with the reason, through the cleanup, and no rollback step
runs. Otherwise it goes where any failure of the step goes (the rollback).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from remediate.actions import registry
from remediate.actions.requests import UNTOUCHED
from remediate.export import asl
from remediate.export.asl import States
from remediate.export.fragment import Fragment
from remediate.language.model import Step

CAUGHT = "$.untouched"


def may_fail(fragment: Fragment) -> bool:
    """Whether the step's states can fail it as UNTOUCHED (else it needs no Catch)."""
    return any(state.get("Type") == "Fail" and state.get("Error") == UNTOUCHED
               for state in fragment.states.values())


def catch(step_id: str) -> dict[str, Any]:
    """The step's Catch for a failure of kind UNTOUCHED (before its catch-all)."""
    return {"ErrorEquals": [UNTOUCHED], "ResultPath": CAUGHT, "Next": f"{step_id}.untouched"}


def states(step_id: str, before: Sequence[Step], on_fail: str, refused: str) -> States:
    """Where that Catch leads: ``refused`` (the iteration's cleanup) with ``$.refused``
    set, as a step refusal does, or ``on_fail`` with ``$.error`` set, as any failure."""
    failed, refusal = f"{step_id}.untouched_failed", f"{step_id}.refused"
    out: States = {refusal: asl.pass_state(refused, parameters={
        "step": step_id,
        "Cause": asl.fmt("step ", step_id, " refused: ", asl.path(f"{CAUGHT}.Cause"))},
        result_path="$.refused")}
    ran = [asl.one_of(f"$.steps.{s.id}.status", ["succeeded", "failed"])
           for s in before if _changes_target(s)]
    if not ran:
        out[f"{step_id}.untouched"] = asl.pass_state(refusal)
        return out
    out[failed] = asl.pass_state(on_fail, parameters={
        "step": step_id, "Error": asl.path(f"{CAUGHT}.Error"),
        "Cause": asl.path(f"{CAUGHT}.Cause")}, result_path="$.error")
    out[f"{step_id}.untouched"] = asl.choice([(asl.any_of(*ran), failed)], refusal)
    return out


def _changes_target(step: Step) -> bool:
    action = registry.get(step.action)
    return action is None or action.changes_target
