"""A child execution of a batch's Map Run, as a target's outcome; a batch's Map Run counts,
where the child executions are not listed."""

from __future__ import annotations

import json

import pytest
from sfn_support import NO_RETRIES, REGION, ec2_targets, from_text, run_playbook

from remediate.actions.contract import Target
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


DOOM = """\
version: 1
name: doom
description: The doomed targets fail; the others succeed.
targets:
  kind: ec2-instance
  tags: {{incident: crowdstrike-2024-07-19}}
steps:
  - id: doom
    action: control.fail
    when: {{value: target.id, in: [{doomed}]}}
    with: {{message: "doomed"}}
guards:
  batches: [{batches}]
"""


def doom(sb: Sandbox, engine: MotoStepFunctions, doomed: list[Target], targets: list[Target],
         batches: str) -> tuple[str, list[str]]:
    """Run DOOM over ``targets``; the execution's ARN and its Map Runs (one per batch)."""
    playbook, params = from_text(DOOM.format(doomed=", ".join(t.id for t in doomed),
                                             batches=batches))
    ended = run_playbook(sb, engine, playbook, params, targets)
    sfn = sb.client("stepfunctions", REGION, config=NO_RETRIES)
    return ended.arn, [e["mapRunStartedEventDetails"]["mapRunArn"]
                       for e in history(sfn, ended.arn) if e["type"] == "MapRunStarted"]


@pytest.fixture
def three(sfn_sandbox: Sandbox) -> list[Target]:
    fleet = sfn_sandbox.build_fleet(FleetSpec(plain=3, azs=1))
    return sorted(ec2_targets(fleet.targets), key=lambda t: t.id)


def test_each_target_of_a_mixed_batch_gets_its_own_outcome_from_its_child_execution(
        sfn_sandbox: Sandbox, sfn_engine: MotoStepFunctions, sfn_clock: VirtualClock,
        three: list[Target]) -> None:
    doomed = three[1]
    arn, (map_run,) = doom(sfn_sandbox, sfn_engine, [doomed], three, "100%")
    sfn = sfn_sandbox.client("stepfunctions", REGION, config=NO_RETRIES)

    followed = ExecutionFollower(sfn, EventBus(), sfn_clock, [three]).follow(arn)

    assert (followed.status, followed.statuses) == ("SUCCEEDED", {
        t.key: "failed" if t is doomed else "succeeded" for t in three})
    assert followed.errors == {doomed.key: "step doom failed: doomed"}
    # The child executions, as AWS shows them: one per item, its input the iteration's.
    listed = sfn.list_executions(mapRunArn=map_run)["executions"]
    assert sorted(e["status"] for e in listed) == ["FAILED", "SUCCEEDED", "SUCCEEDED"]
    prefix = map_run.rsplit(":", 1)[0].replace(":mapRun:", ":execution:")
    assert all(e["executionArn"].startswith(prefix + ":") and e["mapRunArn"] == map_run
               for e in listed)
    failed = sfn.list_executions(mapRunArn=map_run, statusFilter="FAILED")["executions"]
    child = sfn.describe_execution(executionArn=failed[0]["executionArn"])
    assert json.loads(child["input"])["target"]["id"] == doomed.id
    assert (child["status"], child["error"], child["cause"]) == (
        "FAILED", "remediate.Failed", "step doom failed: doomed")
    assert child["stateMachineArn"] == prefix.replace(":execution:", ":stateMachine:")


def test_without_child_executions_a_batch_whose_every_target_failed_ends_them_failed(
        sfn_sandbox: Sandbox, sfn_engine: MotoStepFunctions, sfn_clock: VirtualClock,
        three: list[Target]) -> None:
    """Where Step Functions does not list a Map Run's children (here: no permission), its
    counts are all there is: certain for a batch that failed as a whole, else unknown."""
    canary, second, third = three
    arn, map_runs = doom(sfn_sandbox, sfn_engine, [canary, third], three, "1, 100%")
    sfn_sandbox.fail("ListExecutions", "AccessDeniedException", "not allowed")
    sfn = sfn_sandbox.client("stepfunctions", REGION, config=NO_RETRIES)

    followed = ExecutionFollower(sfn, EventBus(), sfn_clock, [[canary], [second, third]]
                                 ).follow(arn)

    assert (followed.status, followed.statuses) == ("SUCCEEDED", {
        canary.key: "failed", second.key: "interrupted", third.key: "interrupted"})
    assert followed.errors[canary.key] == (
        "batch 1 failed as a whole (its Map Run counted 1 of 1 targets failed); the error is "
        "not known: Step Functions did not list the Map Run's child executions "
        f"({map_runs[0]})")
    assert followed.errors[second.key] == (
        "outcome not known: 1 of the 2 targets of batch 2 failed, and Step Functions did "
        f"not list the Map Run's child executions ({map_runs[1]}); check this target")
