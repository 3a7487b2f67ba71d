"""RedriveExecution (moto 5.2.5 lacks it) and the redrive fields of DescribeExecution.

Validated like AWS: an unknown execution is ``ExecutionDoesNotExist`` (moto's own
check and text); a RUNNING or SUCCEEDED one is ``ExecutionNotRedrivable`` (FAILED,
TIMED_OUT and ABORTED executions can be redriven). A redrive answers
``{"redriveDate": ...}`` (real time, like the start and stop dates moto
gives executions, not the sandbox clock), sets the execution back
to RUNNING, clears its stop date, error, cause and output, and bumps its
``redriveCount``. DescribeExecution returns ``redriveCount`` (0 until redriven),
``redriveStatus`` (``REDRIVABLE``/``NOT_REDRIVABLE``), ``redriveStatusReason``
(AWS's documented reasons, e.g. ``Execution is SUCCEEDED and cannot be
redriven``) and, once redriven, ``redriveDate``.

With moto's ``stepfunctions.execute_state_machine`` on
(:class:`remediate.export.moto_engine.MotoStepFunctions`) the redriven execution
runs again in moto's interpreter, on a new worker thread, exactly as StartExecution
runs it: same execution ARN, same state machine definition (the snapshot taken at
StartExecution), same input. Without it, the execution stays RUNNING, like one
moto starts in that mode.

What differs from AWS:

* AWS resumes a redriven execution from its unsuccessful states: states that
  succeeded are not run again (nor, in an Inline Map or Parallel, the iterations
  and branches that succeeded; a Distributed Map redrives its failed Map Run's
  failed items). The sandbox runs the whole definition again from ``StartAt``
  with the original input: every state, including those that succeeded, makes
  its calls again. remediate's exported fragments inspect a target before they
  change it and skip the work AWS shows done, so a run from the start reaches
  the end state a resumed one would (tests/cli/test_stepfunctions_cli.py checks
  it on the reboot-first iteration failed at its reboot, and on the offline-repair
  iteration rolled back at its repair, whose backup is then reused, not taken
  again); a hand-written definition that does not look before it acts would
  repeat its side effects;
* the execution's history and Map Runs are those of the latest attempt only
  (AWS keeps the first attempt's events and adds ``ExecutionRedriven``);
  ``startDate`` stays the first attempt's, like AWS;
* ``clientToken`` is ignored (no idempotent replay of a redrive), and the 14-day
  redrivable period, the history event limit and EXPRESS state machines are not
  checked; ListExecutions has neither ``redriveCount`` nor ``redriveFilter``;
* the ``ExecutionNotRedrivable`` message reuses AWS's documented
  ``redriveStatusReason`` text (approximation).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from moto.core.responses import ActionResult
from moto.stepfunctions.responses import StepFunctionResponse

from remediate.sandbox import errors
from remediate.sandbox.patcher import Patcher

REDRIVABLE: Final = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})


def _status(execution: Any) -> str:
    status = execution.status  # the interpreter's: an ExecutionStatus (a str Enum)
    return str(getattr(status, "value", status))


def _rerun(execution: Any) -> None:
    """Run the execution again from its start (moto's interpreter), or mark it RUNNING
    (moto without the interpreter)."""
    from moto.stepfunctions.parser.backend.execution import Execution as Interpreted

    execution.stop_date = None
    execution.error = None
    execution.cause = None
    execution.output = None
    if isinstance(execution, Interpreted):
        execution.exec_worker = None  # Execution.start refuses an execution that has one
        execution.start()  # status RUNNING; a new worker thread, a new environment
    else:
        execution.status = "RUNNING"


def install(patcher: Patcher) -> None:
    original_describe = StepFunctionResponse.describe_execution

    def redrive_execution(self: StepFunctionResponse) -> ActionResult:
        arn = self._get_param("executionArn")
        execution: Any = self.stepfunction_backend.describe_execution(arn)
        status = _status(execution)
        if status not in REDRIVABLE:
            raise errors.execution_not_redrivable(status)
        redriven = datetime.now(tz=UTC)  # like moto's startDate and stopDate
        execution.sandbox_redrive_count = getattr(execution, "sandbox_redrive_count", 0) + 1
        execution.sandbox_redrive_date = redriven
        _rerun(execution)
        return ActionResult({"redriveDate": redriven})

    def describe_execution(self: StepFunctionResponse) -> ActionResult:
        described = original_describe(self)
        response = described.result
        assert isinstance(response, dict)
        execution: Any = self.stepfunction_backend.describe_execution(
            response["executionArn"])
        status = _status(execution)
        response["redriveCount"] = getattr(execution, "sandbox_redrive_count", 0)
        redriven = getattr(execution, "sandbox_redrive_date", None)
        if redriven is not None:
            response["redriveDate"] = redriven
        if status in REDRIVABLE:
            response["redriveStatus"] = "REDRIVABLE"
        else:
            response["redriveStatus"] = "NOT_REDRIVABLE"
            response["redriveStatusReason"] = errors.not_redrivable_reason(status)
        return ActionResult(response)

    patcher.set(StepFunctionResponse, "redrive_execution", redrive_execution)
    patcher.set(StepFunctionResponse, "describe_execution", describe_execution)
