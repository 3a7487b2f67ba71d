"""Program steps on both engines: :class:`Find` (a target's own entry in a list, such as a
merged call's ``FailedRequests``), :class:`OnError` with ``into`` (AWS's error, for a
message), and an :class:`Await`'s time-out message naming run-time values.

Each program runs locally (the interpreter, on the sandbox) and compiled, as a state
machine of its own, on moto's Step Functions against the same sandbox.
"""

from __future__ import annotations

import json
from typing import Any

from sfn_support import NO_RETRIES, REGION, ROLE

from remediate.actions import interpret
from remediate.actions.contract import StepContext, Target
from remediate.actions.program import (
    TARGET_ID,
    Await,
    Done,
    Eq,
    Find,
    Fmt,
    OnError,
    Program,
    Send,
    Set,
    Var,
    program,
)
from remediate.actions.requests import WaitTimeout
from remediate.executor.driver import SyncRuntime
from remediate.export.fragment import AslStep
from remediate.export.moto_engine import MotoStepFunctions
from remediate.export.program_asl import compile_program
from remediate.sandbox import FleetSpec, Sandbox

ITEMS = [{"WorkspaceId": "ws-other", "ErrorCode": "A"},
         {"WorkspaceId": "ws-mine", "ErrorCode": "B"},
         {"WorkspaceId": "ws-mine", "ErrorCode": "C"}]


def here(sb: Sandbox, clock: Any, prog: Program, target_id: str) -> Any:
    """The program's outputs, run by the local engine."""
    runtime = SyncRuntime(lambda service, region: sb.client(service, region, NO_RETRIES), clock)
    ctx = StepContext("run-1", Target("workspace", target_id, REGION), {}, runtime)
    return runtime.drive(interpret.run(prog, ctx, {}), REGION)


def there(sb: Sandbox, engine: MotoStepFunctions, prog: Program, target_id: str) -> Any:
    """The execution of the program compiled (its status, and its output or cause)."""
    fragment = compile_program(AslStep("step", "test.program", poll_seconds=15), prog)
    sfn = sb.client("stepfunctions", REGION, NO_RETRIES)
    machine = sfn.create_state_machine(
        name=f"program-{len(sfn.list_state_machines()['stateMachines'])}", roleArn=ROLE,
        definition=json.dumps({"StartAt": fragment.start, "States": fragment.states}))
    arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name="run-1", input=(
        json.dumps({"target": {"id": target_id, "region": REGION}, "run": {"id": "run-1"}})))[
        "executionArn"]
    assert engine.join(timeout=300)
    found = sfn.describe_execution(executionArn=arn)
    if found["status"] == "SUCCEEDED":
        return json.loads(found["output"])
    return found["status"], found.get("error"), found.get("cause")


def test_find_takes_the_first_item_whose_key_matches(
        sfn_sandbox: Sandbox, sfn_engine: MotoStepFunctions) -> None:
    prog = program(
        Set("items", ITEMS),
        Find("mine", Var("vars.items"), "WorkspaceId", TARGET_ID),
        Find("literal", Var("vars.items"), "ErrorCode", "A"),
        Find("none", Var("vars.items"), "WorkspaceId", "ws-nobody"),
        Set("empty", []),
        Find("in_empty", Var("vars.empty"), "WorkspaceId", TARGET_ID),
        Find("absent", Var("vars.never_set"), "WorkspaceId", TARGET_ID),
        Done({"mine": Var("vars.mine"), "literal": Var("vars.literal"), "none": Var("vars.none"),
              "in_empty": Var("vars.in_empty"), "absent": Var("vars.absent")}))
    expected = {"mine": ITEMS[1], "literal": ITEMS[0], "none": None, "in_empty": None,
                "absent": None}

    assert here(sfn_sandbox, sfn_engine.clock, prog, "ws-mine") == expected
    assert there(sfn_sandbox, sfn_engine, prog, "ws-mine") == expected


def test_on_error_into_keeps_aws_error_for_the_message(
        sfn_sandbox: Sandbox, sfn_engine: MotoStepFunctions) -> None:
    fleet = sfn_sandbox.build_fleet(FleetSpec(plain=0, workspaces=1, azs=1))
    (workspace,) = fleet.workspaces
    sfn_sandbox.client("workspaces", REGION, NO_RETRIES).reboot_workspaces(
        RebootWorkspaceRequests=[{"WorkspaceId": workspace.workspace_id}])
    prog = program(
        Set("said", "nothing"),
        Send("workspaces", "RestoreWorkspace", {"WorkspaceId": TARGET_ID}, on_error=(
            OnError(("OperationNotSupportedException",), (
                Set("said", Fmt("refused: ", Var("vars.error").Cause)),), into="error"),)),
        Done({"said": Var("vars.said"), "error": Var("vars.error").Error}))
    refusal = (f"The WorkSpace {workspace.workspace_id} cannot be restored while it is "
               "REBOOTING.")

    assert here(sfn_sandbox, sfn_engine.clock, prog, workspace.workspace_id) == {
        "said": f"refused: OperationNotSupportedException: {refusal}",
        "error": "OperationNotSupportedException"}
    # Step Functions names the error after the service and puts AWS's message, with the
    # request's status and id, in the cause.
    remote = there(sfn_sandbox, sfn_engine, prog, workspace.workspace_id)
    assert remote["said"].startswith(f"refused: {refusal} (Service: ")
    assert remote["error"].endswith(".OperationNotSupportedException")
    assert [c.operation for c in sfn_sandbox.api_calls if c.operation.startswith("Rest")] == [
        "RestoreWorkspace", "RestoreWorkspace"]


def test_a_wait_that_times_out_names_what_it_waited_for_with_its_values(
        sfn_sandbox: Sandbox, sfn_engine: MotoStepFunctions) -> None:
    fleet = sfn_sandbox.build_fleet(FleetSpec(plain=0, workspaces=1, azs=1))
    (workspace,) = fleet.workspaces  # UNHEALTHY, and it stays so
    prog = program(Await("ws", "workspace", TARGET_ID, until=Eq(Var("it").State, "AVAILABLE"),
                         timeout=60, what=Fmt("WorkSpace ", TARGET_ID, " AVAILABLE")),
                   Done({}))

    status, error, cause = there(sfn_sandbox, sfn_engine, prog, workspace.workspace_id)
    assert (status, error) == ("FAILED", "remediate.WaitTimeout")
    assert cause.startswith(f"WorkSpace {workspace.workspace_id} AVAILABLE not reached after "
                            "1m; last seen: {")
    try:
        here(sfn_sandbox, sfn_engine.clock, prog, workspace.workspace_id)
    except WaitTimeout as timeout:
        assert str(timeout) == (f"timed out after 1m waiting for WorkSpace "
                                f"{workspace.workspace_id} AVAILABLE")
    else:
        raise AssertionError("the wait did not time out locally")
