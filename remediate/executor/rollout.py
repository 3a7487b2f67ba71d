"""Targets through their steps in guarded batches: canary, confirmation, budget.

Batches are barriers (like ansible's ``serial``): the next starts when the last
target of the previous one has finished, so the canary's result is known before
anything else is touched. Within a batch up to ``concurrency`` targets are in
flight; when one finishes the next starts, unless the run is stopping (then the
rest end ``interrupted``), an alarm of ``--stop-on-alarm`` fired or the failure
budget is spent (then the rest end ``skipped``).

``concurrency`` counts per account and Region, as AWS's API buckets and the
rescue pools do (and as SSM Automation's ``MaxConcurrency`` applies per target
location): a run over three Regions keeps three times as many targets in flight,
each Region paced to its own buckets.

With ``guards.rollout: ramp`` only the canary batch is a barrier (the question
comes after it); the other targets go as one batch whose targets in flight are
capped by the later sizes, each cap opening as results arrive
(:mod:`remediate.executor.ramp`).

A resumed run counts the failures it had before against the budget (and, on a
ramp, its results towards the caps), and does not ask again after a canary that
was already confirmed.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from remediate.executor.context import RunContext
from remediate.executor.events import (
    BatchFinished,
    BatchStarted,
    BudgetExhausted,
    CanaryAnswered,
    CanaryQuestion,
    Notice,
    RampWidened,
)
from remediate.executor.guards import FAILED, BatchResult, FailureBudget, batch_sizes
from remediate.executor.ramp import Ramp
from remediate.executor.target_runner import TargetRunner
from remediate.journal import TargetRecord
from remediate.language.model import Guards
from remediate.reporters.wording import plural

Confirm = Callable[[BatchResult], bool]
Spawn = Callable[[TargetRunner, Any, Callable[[], None]], None]
CANARY_CONFIRMED = "canary_confirmed"
RESULTS = frozenset({"succeeded", *FAILED})
"""Outcomes that are results for a ramp: the target ran its steps to an end."""


class Rollout:
    def __init__(self, rc: RunContext, concurrency: int, confirm: Confirm | None,
                 spawn: Spawn) -> None:
        self.rc = rc
        self.concurrency = concurrency
        self.confirm = confirm
        self.spawn = spawn
        self.budget_exhausted = False
        # Called before each batch starts: the alarms of --stop-on-alarm are read again
        # (after the question about the canary, minutes may have passed).
        self.before_batch: Callable[[], object] = lambda: None
        self.left_by_alarm = 0  # targets not started because a --stop-on-alarm alarm fired
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
        ramp: Ramp | None = None
        if guards.rollout == "ramp":
            sizes, ramp = _on_a_ramp(guards, sizes, len(runners), finished, confirmed)
        queue = deque(runners)
        for index, size in enumerate(sizes):
            self.before_batch()
            if rc.stop_level or rc.halted or budget.exhausted or not queue:
                break
            batch = [queue.popleft() for _ in range(min(size, len(queue)))]
            ramping = ramp if index or confirmed else None
            rc.bus.publish(BatchStarted(index, tuple(r.target for r in batch), len(sizes),
                                        ramping.cap if ramping else None))
            self._batch(batch, budget, ramping)
            result = BatchResult(index, {r.target.key: r.status or "interrupted" for r in batch},
                                 len(queue))
            rc.bus.publish(BatchFinished.of(index, result.statuses.values(), len(sizes)))
            if (index == 0 and not confirmed and guards.pause_after_canary and queue
                    and self.confirm is not None and not rc.stop_level and not rc.halted
                    and not budget.exhausted):
                go_on = self._ask(result, budget)
                if not go_on:
                    self.declined = True
                    rc.bus.publish(Notice("warning", "not confirmed after the canary batch: "
                                                     f"{plural(len(queue), 'target')} skipped"))
                    self._leave(queue, "skipped", "not confirmed after the canary batch")
                    return
                rc.journal.set_state(rc.run_id, CANARY_CONFIRMED, True)
        self._leave_unstarted(queue, budget)

    def _ask(self, result: BatchResult, budget: FailureBudget) -> bool:
        """The question after the canary, between events that let a progress display stop
        repainting over it (and say how the canary fared) and start again."""
        assert self.confirm is not None
        self.rc.bus.publish(CanaryQuestion(tuple(sorted(result.statuses.items())),
                                           result.remaining, budget.failed, budget.allowed))
        go_on = False
        try:
            go_on = self.confirm(result)
        finally:
            self.rc.bus.publish(CanaryAnswered(go_on))
        return go_on

    def _batch(self, batch: list[TargetRunner], budget: FailureBudget,
               ramp: Ramp | None = None) -> None:
        """Run ``batch``: up to ``concurrency`` targets in flight per account and Region,
        and on a ``ramp`` up to its cap in all."""
        rc = self.rc
        waiting: dict[tuple[str, str], deque[TargetRunner]] = {}
        for runner in batch:
            waiting.setdefault(_scope(runner), deque()).append(runner)
        active: Counter[tuple[str, str]] = Counter()
        # On a ramp a freed slot may go to another account or Region: they take turns.
        turns = deque(waiting)

        def may_start(scope: tuple[str, str]) -> bool:
            return (bool(waiting[scope]) and active[scope] < self.concurrency
                    and (ramp is None or active.total() < ramp.cap)
                    and not rc.stop_level and not rc.halted and not budget.exhausted)

        def start(scope: tuple[str, str]) -> None:
            runner = waiting[scope].popleft()
            active[scope] += 1
            self.spawn(runner, runner.work(), partial(finished, runner))

        def start_more(scope: tuple[str, str]) -> None:
            if ramp is None:
                while may_start(scope):
                    start(scope)
                return
            started = True
            while started:
                started = False
                for _ in range(len(turns)):
                    turns.rotate(-1)
                    if may_start(turns[0]):
                        start(turns[0])
                        started = True

        def finished(runner: TargetRunner) -> None:
            scope = _scope(runner)
            active[scope] -= 1
            if budget.record(runner.status):
                self.budget_exhausted = True
                rc.bus.publish(BudgetExhausted(budget.failed, budget.allowed))
            if ramp is not None and runner.status in RESULTS and ramp.record():
                rc.bus.publish(RampWidened(ramp.cap, ramp.results))
            start_more(scope)

        for scope in list(waiting):
            start_more(scope)
        rc.scheduler.run()
        rc.journal.commit()
        self._leave_unstarted(deque(r for queue in waiting.values() for r in queue), budget)

    def _leave_unstarted(self, runners: deque[TargetRunner], budget: FailureBudget) -> None:
        if self.rc.stop_level:
            self._leave(runners, "interrupted", "not started: the run was interrupted")
        elif self.rc.halted:
            self.left_by_alarm += len(runners)
            self._leave(runners, "skipped", f"not started: {self.rc.halted}")
        elif budget.exhausted:
            self._leave(runners, "skipped", "not started: the failure budget is spent")

    def _leave(self, runners: deque[TargetRunner], status: Any, reason: str) -> None:
        while runners:
            runners.popleft().finish(status, reason)
        self.rc.journal.commit()


def _on_a_ramp(guards: Guards, sizes: list[int], count: int, finished: list[str | None],
               confirmed: bool) -> tuple[list[int], Ramp]:
    """The canary batch alone (a barrier; none once confirmed), then the rest as one batch
    on a ramp, which a resumed run's results after the canary have taken so far."""
    canary = 0 if confirmed or not sizes else sizes[0]
    results = sum(1 for status in finished if status in RESULTS)
    first = guards.batches[0].resolve(count + len(finished))
    ramp = Ramp(guards.batches[1:] or guards.batches, count,
                max(0, results - first) if confirmed else 0)
    return [n for n in (canary, count - canary) if n], ramp


def _scope(runner: TargetRunner) -> tuple[str, str]:
    """What ``concurrency`` counts in flight per: AWS's limits are per account and Region."""
    return runner.target.account, runner.target.region
