"""Child executions of Map Runs, as the sandbox keeps them (:mod:`remediate.sandbox.map_runs`
records them and answers for them)."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class ChildExecution:
    """One item's run, with the attributes moto's responses read from an execution."""

    execution_arn: str
    state_machine_arn: str
    map_run_arn: str
    execution_input: str
    start_date: datetime = field(default_factory=lambda: datetime.now(tz=UTC))
    status: str = "RUNNING"
    stop_date: datetime | None = None
    error: str | None = None
    cause: str | None = None
    output: str | None = None

    @property
    def name(self) -> str:
        return self.execution_arn.rsplit(":", 1)[1]

    def described(self) -> dict[str, Any]:
        """DescribeExecution's answer, as AWS gives it for a child execution."""
        found: dict[str, Any] = {
            "executionArn": self.execution_arn, "stateMachineArn": self.state_machine_arn,
            "mapRunArn": self.map_run_arn, "name": self.name, "status": self.status,
            "startDate": self.start_date, "input": self.execution_input,
            "inputDetails": {"included": True}, "redriveCount": 0,
            "redriveStatus": "NOT_REDRIVABLE",
            "redriveStatusReason": "Execution is a child of a Map Run and cannot be redriven"}
        if self.stop_date is not None:
            found["stopDate"] = self.stop_date
        if self.status == "SUCCEEDED" and self.output is not None:
            found.update(output=self.output, outputDetails={"included": True})
        found.update({k: v for k, v in (("error", self.error), ("cause", self.cause)) if v})
        return found

    def listed(self) -> dict[str, Any]:
        """ListExecutions' entry."""
        entry = {k: v for k, v in self.described().items() if k in (
            "executionArn", "stateMachineArn", "mapRunArn", "name", "status", "startDate",
            "stopDate", "redriveCount")}
        entry["itemCount"] = 1
        return entry


class MapRunChildren:
    """Every Map Run's child executions, kept while the interpreter runs them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_run: dict[str, list[ChildExecution]] = {}
        self._by_arn: dict[str, ChildExecution] = {}

    def start(self, map_run_arn: str, execution_input: str) -> ChildExecution:
        prefix = map_run_arn.rsplit(":", 1)[0]  # arn:aws:states:R:A:mapRun:MACHINE/LABEL
        child = ChildExecution(
            execution_arn=f"{prefix.replace(':mapRun:', ':execution:', 1)}:{uuid.uuid4()}",
            state_machine_arn=prefix.replace(":mapRun:", ":stateMachine:", 1),
            map_run_arn=map_run_arn, execution_input=execution_input)
        with self._lock:
            self._by_run.setdefault(map_run_arn, []).append(child)
            self._by_arn[child.execution_arn] = child
        return child

    def of_map_run(self, map_run_arn: str) -> list[ChildExecution] | None:
        with self._lock:
            children = self._by_run.get(map_run_arn)
            return None if children is None else sorted(
                children, key=lambda c: c.start_date, reverse=True)

    def get(self, execution_arn: str) -> ChildExecution | None:
        with self._lock:
            return self._by_arn.get(execution_arn)
