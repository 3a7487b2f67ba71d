"""Targets through their steps in guarded batches: canary, confirmation, budget.

Batches are barriers (like ansible's ``serial``): the next starts when the last
target of the previous one has finished, so the canary's result is known before
anything else is touched. Within a batch up to ``concurrency`` targets are in
flight; when one finishes the next starts, unless the run is stopping or the
failure budget is spent (then the rest end ``interrupted`` / ``skipped``).

``concurrency`` counts per account and Region, as AWS's API buckets and the
rescue pools do (and as SSM Automation's ``MaxConcurrency`` applies per target
location): a run over three Regions keeps three times as many targets in flight,
each Region paced to its own buckets.

A resumed run counts the failures it had before against the budget, and does
not ask again after a canary that was already confirmed.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from remediate.executor.context import RunContext
from remediate.executor.events import BatchFinished, BatchStarted, BudgetExhausted, Notice
from remediate.executor.guards import FAILED, BatchResult, FailureBudget, batch_sizes
from remediate.executor.target_runner import TargetRunner
from remediate.journal import TargetRecord
from remediate.reporters.wording import plural

Confirm = Callable[[BatchResult], bool]
Spawn = Callable[[TargetRunner, Any, Callable[[], None]], None]
CANARY_CONFIRMED = "canary_confirmed"


class Rollout:
    def __init__(self, rc: RunContext, concurrency: int, confirm: Confirm | None,
                 spawn: Spawn) -> None:
        self.rc = rc
        self.concurrency = concurrency
        self.confirm = confirm
        self.spawn = spawn
        self.budget_exhausted = False
        self.declined = False  # the operator said no after the canary batch

    def run(self, runners: list[TargetRunner], done: Iterable[TargetRecord]) -> None:
        """Work on ``runners``; ``done`` are targets a resumed run had finished before."""
        rc, guards = self.rc, self.rc.playbook.guards
        # Targets a crash or Ctrl-C left mid-way go first.
        runners = sorted(runners, key=lambda r: r.phase == "inspected")
        confirmed = bool(rc.journal.state(rc.run_id, CANARY_CONFIRMED, False))
        specs = (guards.batches[1:] or guards.batches) if confirmed else guards.batches
        sizes = batch_sizes(specs, len(runners))
        finished = [r.status for r in done]
        budget = FailureBudget(len(runners) + sum(1 for s in finished if s != "refused"),
                               guards.max_failure_percent,
                               sum(1 for s in finished if s in FAILED))
        queue = deque(runners)
        for index, size in enumerate(sizes):
            if rc.stop_level or budget.exhausted or not queue:
                break
            batch = [queue.popleft() for _ in range(min(size, len(queue)))]
            rc.bus.publish(BatchStarted(index, tuple(r.target for r in batch), len(sizes)))
            self._batch(batch, budget)
            result = BatchResult(index, {r.target.key: r.status or "interrupted" for r in batch},
                                 len(queue))
            rc.bus.publish(BatchFinished(index, result.succeeded, result.failed, len(sizes)))
            if (index == 0 and not confirmed and guards.pause_after_canary and queue
                    and self.confirm is not None and not rc.stop_level
                    and not budget.exhausted):
                if not self.confirm(result):
                    self.declined = True
                    rc.bus.publish(Notice("warning", "not confirmed after the canary batch: "
                                                     f"{plural(len(queue), 'target')} skipped"))
                    self._leave(queue, "skipped", "not confirmed after the canary batch")
                    return
                rc.journal.set_state(rc.run_id, CANARY_CONFIRMED, True)
        self._leave_unstarted(queue, budget)

    def _batch(self, batch: list[TargetRunner], budget: FailureBudget) -> None:
        """Run ``batch``: up to ``concurrency`` targets in flight per account and Region."""
        rc = self.rc
        waiting: dict[tuple[str, str], deque[TargetRunner]] = {}
        for runner in batch:
            waiting.setdefault(_scope(runner), deque()).append(runner)
        active: Counter[tuple[str, str]] = Counter()

        def start_more(scope: tuple[str, str]) -> None:
            queue = waiting[scope]
            while (queue and active[scope] < self.concurrency and not rc.stop_level
                   and not budget.exhausted):
                runner = queue.popleft()
                active[scope] += 1
                self.spawn(runner, runner.work(), partial(finished, runner))

        def finished(runner: TargetRunner) -> None:
            scope = _scope(runner)
            active[scope] -= 1
            if budget.record(runner.status):
                self.budget_exhausted = True
                rc.bus.publish(BudgetExhausted(budget.failed, budget.allowed))
            start_more(scope)

        for scope in list(waiting):
            start_more(scope)
        rc.scheduler.run()
        rc.journal.commit()
        self._leave_unstarted(deque(r for queue in waiting.values() for r in queue), budget)

    def _leave_unstarted(self, runners: deque[TargetRunner], budget: FailureBudget) -> None:
        if self.rc.stop_level:
            self._leave(runners, "interrupted", "not started: the run was interrupted")
        elif budget.exhausted:
            self._leave(runners, "skipped", "not started: the failure budget is spent")

    def _leave(self, runners: deque[TargetRunner], status: Any, reason: str) -> None:
        while runners:
            runners.popleft().finish(status, reason)
        self.rc.journal.commit()


def _scope(runner: TargetRunner) -> tuple[str, str]:
    """What ``concurrency`` counts in flight per: AWS's limits are per account and Region."""
    return runner.target.account, runner.target.region
