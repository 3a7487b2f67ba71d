"""A child execution of a batch's Map Run, as a target's outcome; a batch's Map Run counts,
where the child executions are not listed (moto)."""

from __future__ import annotations

import json

import pytest
from sfn_support import NO_RETRIES, REGION, ec2_targets, from_text, run_playbook

from remediate.clock import VirtualClock
from remediate.executor.events import EventBus
from remediate.export.follow import ExecutionFollower, history, outcome
from remediate.export.moto_engine import MotoStepFunctions
from remediate.sandbox import FleetSpec, Sandbox


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


FAIL_THE_CANARY = """\
version: 1
name: fail-the-canary
description: The canary batch's one target fails; the others succeed.
targets:
  kind: ec2-instance
  tags: {{incident: crowdstrike-2024-07-19}}
steps:
  - id: doom
    action: control.fail
    when: {{value: target.id, equals: {canary}}}
    with: {{message: "doomed"}}
guards:
  batches: [1, 100%]
"""


def test_a_batch_whose_every_target_failed_ends_them_failed_not_interrupted(
        sfn_sandbox: Sandbox, sfn_engine: MotoStepFunctions, sfn_clock: VirtualClock) -> None:
    fleet = sfn_sandbox.build_fleet(FleetSpec(plain=2, azs=1))
    canary, other = targets = sorted(ec2_targets(fleet.targets), key=lambda t: t.id)
    playbook, params = from_text(FAIL_THE_CANARY.format(canary=canary.id))
    ended = run_playbook(sfn_sandbox, sfn_engine, playbook, params, targets)
    sfn = sfn_sandbox.client("stepfunctions", REGION, config=NO_RETRIES)
    map_runs = [e["mapRunStartedEventDetails"]["mapRunArn"] for e in history(sfn, ended.arn)
                if e["type"] == "MapRunStarted"]

    followed = ExecutionFollower(sfn, EventBus(), sfn_clock, [[canary], [other]]).follow(
        ended.arn)

    # moto lists no child executions: the Map Run's counts are all there is. Before, a
    # batch of one failed target ended `interrupted` ("outcome not known").
    assert (followed.status, followed.statuses) == (
        "SUCCEEDED", {canary.key: "failed", other.key: "succeeded"})
    assert followed.errors == {canary.key: (
        "batch 1 failed as a whole (its Map Run counted 1 of 1 targets failed); the error is "
        "not known: Step Functions did not list the Map Run's child executions "
        f"({map_runs[0]})")}
