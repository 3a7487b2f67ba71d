"""Following an execution of an exported playbook: its history as the executor's events.

The parent execution's history tells when each batch (a Map Run) starts and
ends: ``MapRunStarted`` -> :class:`BatchStarted` (and :class:`TargetStarted` for
its targets), ``MapRunSucceeded``/``Failed``/``Aborted`` -> each target's
:class:`TargetFinished` and :class:`BatchFinished`. A target's outcome comes from
its child execution (``ListExecutions(mapRunArn=...)``, then its input, status
and error: ``remediate.RolledBack`` -> ``rolled_back``, ``remediate.Refused`` ->
``refused``, other errors -> ``failed``, with the Fail's cause as the error).

What cannot be mapped, and is not faked:

* steps: a child execution's steps are not read, so reports of a Step Functions
  run list targets without steps (no :class:`StepStarted`/:class:`StepFinished`,
  no retries);
* where the child executions are not listed (no ``states:ListExecutions``; bare
  moto 5.2.5, which the sandbox completes: :mod:`remediate.sandbox.map_runs`), a
  batch's Map Run counts are all there is: a batch with no failure means every
  target of it succeeded, one whose every target failed (a batch of one, say)
  that each failed (how, and with which error, is not known); in a batch with
  some failures, which targets failed is not known, and each of its targets ends
  ``interrupted`` with an error saying so.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from botocore.exceptions import ClientError

from remediate.actions.contract import Target
from remediate.clock import Clock
from remediate.executor.events import (
    BatchFinished,
    BatchStarted,
    EventBus,
    Notice,
    TargetFinished,
    TargetStarted,
    TargetStatus,
)
from remediate.export.iteration import ERRORS

RUNNING: Final = "RUNNING"
MAP_RUN_ENDS: Final = frozenset({"MapRunSucceeded", "MapRunFailed", "MapRunAborted"})
_STATUS_OF_ERROR: Final[dict[str, TargetStatus]] = {
    ERRORS["rolled_back"]: "rolled_back", ERRORS["refused"]: "refused"}


@dataclass
class Followed:
    """What an execution did to its targets (keys: ``Target.key``)."""

    status: str = RUNNING
    error: str | None = None
    cause: str | None = None
    statuses: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def history(sfn: Any, arn: str) -> Iterator[dict[str, Any]]:
    """Every event of the execution, oldest first."""
    token: str | None = None
    while True:
        page = sfn.get_execution_history(executionArn=arn, maxResults=1000,
                                         includeExecutionData=False,
                                         **({"nextToken": token} if token else {}))
        yield from page["events"]
        token = page.get("nextToken")
        if not token:
            return


def children(sfn: Any, map_run_arn: str) -> list[dict[str, Any]] | None:
    """The Map Run's child executions described (input, status, error, cause); None where
    they cannot be listed (denied; bare moto 5.2.5 fails on ``mapRunArn``)."""
    arns: list[str] = []
    token: str | None = None
    try:
        while True:
            page = sfn.list_executions(mapRunArn=map_run_arn,
                                       **({"nextToken": token} if token else {}))
            arns.extend(e["executionArn"] for e in page["executions"])
            token = page.get("nextToken")
            if not token:
                break
    except (ClientError, TypeError):  # TypeError: moto's own crash, in process
        return None
    return [sfn.describe_execution(executionArn=arn) for arn in arns] or None


def outcome(child: Mapping[str, Any]) -> tuple[str, TargetStatus, str | None]:
    """(target id, its status, error) of one child execution."""
    target_id = str(json.loads(child.get("input") or "{}").get("target", {}).get("id", "?"))
    if child["status"] == "SUCCEEDED":
        return target_id, "succeeded", None
    error = str(child.get("error") or child["status"])
    cause = child.get("cause")
    text = f"{cause}" if cause else error
    return target_id, _STATUS_OF_ERROR.get(error, "failed"), text


class ExecutionFollower:
    """Publishes an execution's progress on ``bus``, polling every ``pause()``.

    ``batches`` are the execution's batches of targets (its input), ``first`` the
    index of the first in the whole run (an execution after the canary starts at 1),
    ``total`` the run's number of batches.
    """

    def __init__(self, sfn: Any, bus: EventBus, clock: Clock, batches: Sequence[Sequence[Target]],
                 *, first: int = 0, total: int | None = None,
                 pause: Callable[[], object] | None = None,
                 tick: Callable[[], object] | None = None) -> None:
        self.sfn = sfn
        self.bus = bus
        self.clock = clock
        self.batches = [tuple(b) for b in batches]
        self.first = first
        self.total = total if total is not None else first + len(self.batches)
        self.pause: Callable[[], object] = pause or (lambda: clock.sleep(5.0))
        self.tick: Callable[[], object] = tick or (lambda: None)
        self.result = Followed()
        self._seen = 0
        self._map_runs: list[str] = []
        self._finished_batches: set[int] = set()

    def follow(self, arn: str) -> Followed:
        while True:
            found = self.sfn.describe_execution(executionArn=arn)
            self._read_history(arn)
            if found["status"] != RUNNING:
                self._read_history(arn)
                break
            self.tick()
            self.pause()
        result = self.result
        result.status, result.error, result.cause = (found["status"], found.get("error"),
                                                     found.get("cause"))
        self._leave_unfinished()
        return result

    def _read_history(self, arn: str) -> None:
        for event in history(self.sfn, arn):
            if event["id"] <= self._seen:
                continue
            self._seen = event["id"]
            kind = event["type"]
            if kind == "MapRunStarted":
                self._started(event["mapRunStartedEventDetails"]["mapRunArn"])
            elif kind in MAP_RUN_ENDS and self._map_runs:
                self._ended(len(self._map_runs) - 1)

    def _started(self, map_run_arn: str) -> None:
        index = len(self._map_runs)
        self._map_runs.append(map_run_arn)
        if index >= len(self.batches):
            self.bus.publish(Notice("warning", f"a Map Run beyond the {len(self.batches)} "
                                               f"batches of the input: {map_run_arn}"))
            return
        targets = self.batches[index]
        self.bus.publish(BatchStarted(self.first + index, targets, self.total))
        for target in targets:
            self.bus.publish(TargetStarted(target))

    def _ended(self, index: int) -> None:
        if index >= len(self.batches) or index in self._finished_batches:
            return
        self._finished_batches.add(index)
        arn = self._map_runs[index]
        targets = self.batches[index]
        counts = self.sfn.describe_map_run(mapRunArn=arn)["itemCounts"]
        described = children(self.sfn, arn)
        if described is not None:
            by_id = {t.id: t for t in targets}
            for child in described:
                target_id, status, error = outcome(child)
                if target_id in by_id:
                    self._finish(by_id[target_id], status, error)
        not_ok = sum(int(counts.get(k, 0)) for k in ("failed", "aborted", "timedOut"))
        batch = self.first + index + 1
        for target in targets:
            if target.key in self.result.statuses:
                continue
            if not_ok == 0 and int(counts.get("succeeded", 0)) == len(targets):
                self._finish(target, "succeeded", None)
            elif not_ok == len(targets):  # every one failed: that much is certain
                self._finish(target, "failed", (
                    f"batch {batch} failed as a whole (its Map Run counted {not_ok} of "
                    f"{len(targets)} targets failed); the error is not known: Step Functions "
                    f"did not list the Map Run's child executions ({arn})"))
            else:
                self._finish(target, "interrupted", (
                    f"outcome not known: {not_ok} of the {len(targets)} targets of batch "
                    f"{batch} failed, and Step Functions did not list the "
                    f"Map Run's child executions ({arn}); check this target"))
        statuses = [self.result.statuses[t.key] for t in targets]
        self.bus.publish(BatchFinished.of(self.first + index, statuses, self.total))

    def _finish(self, target: Target, status: TargetStatus, error: str | None) -> None:
        self.result.statuses[target.key] = status
        if error:
            self.result.errors[target.key] = error
        self.bus.publish(TargetFinished(target, status, error))

    def _leave_unfinished(self) -> None:
        """The execution ended: a batch it started but did not end (aborted, timed out)."""
        for index in range(len(self._map_runs)):
            if index not in self._finished_batches and index < len(self.batches):
                for target in self.batches[index]:
                    if target.key not in self.result.statuses:
                        self._finish(target, "interrupted", (
                            f"the execution ended {self.result.status} while its batch "
                            "ran: check this target"))
