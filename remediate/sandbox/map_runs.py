"""The child executions of a Distributed Map's Map Run, which moto 5.2.5 does not keep.

On AWS each item of a Distributed Map runs as a child execution of its own:
``ListExecutions(mapRunArn=...)`` lists them, and ``DescribeExecution`` describes
each (its input after the ``ItemSelector``, status, error and cause of a failure,
output). moto's interpreter runs every item inline and only counts them in the
Map Run (``ListExecutions`` with a ``mapRunArn`` crashes). Here each item's run is
recorded as a child execution, named and shaped as AWS names them
(``arn:aws:states:REGION:ACCOUNT:execution:MACHINE/LABEL:UUID``, its state machine
``...:stateMachine:MACHINE/LABEL``), and those two calls answer for them.

What differs from AWS: a child's history (``GetExecutionHistory``) is not kept, and
child executions are listed newest first without paging.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from moto.core.responses import ActionResult
from moto.stepfunctions.responses import StepFunctionResponse

from remediate.sandbox import state
from remediate.sandbox.child_executions import ChildExecution
from remediate.sandbox.patcher import Patcher


def _ended(child: ChildExecution, program: Any, output: Any) -> None:
    """Set ``child``'s end from its item's ``program`` state, as the interpreter left it."""
    from moto.stepfunctions.parser.asl.eval.program_state import (
        ProgramEnded,
        ProgramError,
        ProgramStopped,
        ProgramTimedOut,
    )
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    child.stop_date = datetime.now(tz=UTC)
    if isinstance(program, ProgramEnded):
        child.status, child.output = "SUCCEEDED", to_json_str(output)
    elif isinstance(program, ProgramStopped):
        child.status, child.error, child.cause = "ABORTED", program.error, program.cause
    elif isinstance(program, ProgramTimedOut):
        child.status = "TIMED_OUT"
    else:  # ProgramError (a Fail state, an uncaught error), or the worker crashed
        details = (program.error or {}) if isinstance(program, ProgramError) else {}
        child.status = "FAILED"
        child.error = details.get("error") or "States.Runtime"
        child.cause = details.get("cause")


def record_items(patcher: Patcher) -> None:
    """Record each Distributed Map item's run as a child execution of the active
    sandbox (:class:`~remediate.export.moto_engine.MotoStepFunctions` calls this)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (  # noqa: E501
        distributed_item_processor_worker as worker_module,
    )
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    worker_class: Any = worker_module.DistributedItemProcessorWorker
    run_job: Callable[..., None] = worker_class._eval_job
    select_input: Callable[..., None] = worker_class._eval_input
    current = threading.local()  # a worker runs its items one after another on its thread

    def eval_job(worker: Any, env: Any, job: Any) -> None:
        world = state.maybe_current()
        if world is None:
            return run_job(worker, env, job)
        current.child = world.map_run_children.start(worker._map_run_record.map_run_arn,
                                                     to_json_str(job.job_input))
        try:
            run_job(worker, env, job)
        finally:
            _ended(current.child, env.program_state(), job.job_output)
            current.child = None

    def eval_input(worker: Any, env_frame: Any) -> None:
        select_input(worker, env_frame)  # the ItemSelector: what the child gets as input
        if getattr(current, "child", None) is not None:
            current.child.execution_input = to_json_str(env_frame.states.get_input())

    patcher.set(worker_class, "_eval_job", eval_job)
    patcher.set(worker_class, "_eval_input", eval_input)


def install(patcher: Patcher) -> None:
    """ListExecutions (``mapRunArn``) and DescribeExecution (a child's ARN) answer from
    the sandbox's recorded child executions."""
    list_executions: Callable[[StepFunctionResponse], ActionResult] = (
        StepFunctionResponse.list_executions)
    describe_execution: Callable[[StepFunctionResponse], ActionResult] = (
        StepFunctionResponse.describe_execution)

    def list_children(self: StepFunctionResponse) -> ActionResult:
        map_run_arn = self._get_param("mapRunArn")
        if not map_run_arn:
            return list_executions(self)
        found = state.current().map_run_children.of_map_run(map_run_arn)
        if found is None:  # no item started yet (or no such Map Run: moto's error)
            self.stepfunction_backend.describe_map_run(map_run_arn)
            found = []
        status = self._get_param("statusFilter")
        return ActionResult({"executions": [
            c.listed() for c in found if status is None or c.status == status]})

    def describe_child(self: StepFunctionResponse) -> ActionResult:
        child = state.current().map_run_children.get(self._get_param("executionArn"))
        return describe_execution(self) if child is None else ActionResult(child.described())

    patcher.set(StepFunctionResponse, "list_executions", list_children)
    patcher.set(StepFunctionResponse, "describe_execution", describe_child)
