"""The terminal reporter: live progress bars on a TTY, one line per event elsewhere.

Progress mode shows a bar for all targets (succeeded, failed, rolled back,
refused, in flight, retries, API throttling, ETA) and one per step (done,
failed, running); failures, refusals, retries and notices print above the bars.
Plain mode (not a TTY, or ``--no-progress``) prints every event as one line, for
CI logs. Output goes to the console given, by default standard error, so
``--format json`` on standard output stays parseable.
"""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from remediate.aws.errors import ErrorClass, classify
from remediate.executor.events import (
    ApiRetrying,
    BatchStarted,
    BudgetExhausted,
    Event,
    Interrupted,
    Notice,
    RollbackStarted,
    RunFinished,
    RunResumed,
    RunStarted,
    StepFinished,
    StepRetrying,
    StepStarted,
    TargetFinished,
    TargetInspected,
    TargetRestarted,
    TargetResumed,
    TargetStarted,
)
from remediate.reporters.lines import line
from remediate.reporters.subscriber import Subscriber

# Events worth a line above the progress bars (the rest only move the bars).
_NOTABLE = (BatchStarted, RollbackStarted, StepRetrying, BudgetExhausted, Interrupted, Notice,
            RunFinished, RunResumed, TargetRestarted)


def _notable(event: Event) -> bool:
    # A refused target's TargetInspected is not: its TargetFinished says why, once.
    if isinstance(event, StepFinished):
        return event.status == "failed" or event.rollback
    if isinstance(event, TargetFinished):
        return event.status != "succeeded"
    return isinstance(event, _NOTABLE)


class TerminalReporter(Subscriber):
    def __init__(
        self, out: Console | TextIO | None = None, *, progress: bool | None = None
    ) -> None:
        if isinstance(out, Console):
            self.console = out
        else:
            self.console = Console(file=out) if out is not None else Console(stderr=True)
        self.live = self.console.is_terminal if progress is None else progress
        self._progress: Progress | None = None
        self._overall: TaskID | None = None
        self._steps: dict[str, TaskID] = {}
        self._settled: set[str] = set()
        self._in_flight: set[str] = set()
        self._running: dict[str, set[str]] = {}
        self._done: dict[str, set[str]] = {}  # step -> targets that finished it
        self._failed: dict[str, int] = {}
        self.counts = dict.fromkeys(("succeeded", "failed", "rolled_back", "refused", "skipped",
                                     "retries", "api_retries", "throttled"), 0)

    def print(self, text: str) -> None:
        console = self._progress.console if self._progress is not None else self.console
        console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)

    def seen(self, event: Event) -> None:
        if self.live and not _notable(event):
            return
        text = line(event)
        if text is not None:
            self.print(text)

    # -- state the bars show ----------------------------------------------------------------

    def on_run_started(self, event: RunStarted) -> None:
        if not self.live:
            return
        self._progress = Progress(
            TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"), TimeRemainingColumn(),
            console=self.console, transient=False)
        total = len(event.targets)
        self._overall = self._progress.add_task("targets", total=total, detail="")
        for step in event.steps:
            self._steps[step] = self._progress.add_task(f"  {step}", total=total, detail="")
            self._running[step], self._done[step], self._failed[step] = set(), set(), 0
        self._progress.start()
        self._refresh()

    def on_target_inspected(self, event: TargetInspected) -> None:
        if event.refused is not None:
            self.counts["refused"] += 1
            self._settle(event.target.key)

    def on_target_resumed(self, event: TargetResumed) -> None:
        """A target the run had finished before this process: counted, its bar settled."""
        if event.phase == "done" and event.status in self.counts:
            self.counts[event.status] += 1
            self._settle(event.target.key)

    def on_target_started(self, event: TargetStarted) -> None:
        self._in_flight.add(event.target.key)
        self._refresh()

    def on_step_started(self, event: StepStarted) -> None:
        self._running.setdefault(event.step_id, set()).add(event.target.key)
        self._refresh()

    def on_step_retrying(self, event: StepRetrying) -> None:
        self.counts["retries"] += 1
        self._refresh()

    def on_api_retrying(self, event: ApiRetrying) -> None:
        self.counts["api_retries"] += 1
        if classify(event.code) is ErrorClass.THROTTLED:
            self.counts["throttled"] += 1
        self._refresh()

    def on_step_finished(self, event: StepFinished) -> None:
        self._running.get(event.step_id, set()).discard(event.target.key)
        task = self._steps.get(event.step_id)
        if task is not None and not event.rollback:
            self._done[event.step_id].add(event.target.key)
            if event.status == "failed":
                self._failed[event.step_id] += 1
            self._update(task, advance=1)
        self._refresh()

    def on_target_finished(self, event: TargetFinished) -> None:
        self._in_flight.discard(event.target.key)
        if event.target.key not in self._settled and event.status in self.counts:
            self.counts[event.status] += 1
        self._settle(event.target.key)

    def on_run_finished(self, event: RunFinished) -> None:
        if self._progress is not None:
            self._refresh()
            self._progress.stop()
            self._progress = None

    def _settle(self, key: str) -> None:
        """The target is done with: the steps it will never run leave their bars' totals."""
        if key in self._settled:
            return
        self._settled.add(key)
        if self._overall is not None:
            self._update(self._overall, advance=1)
        for step, task in self._steps.items():
            if key not in self._done[step]:
                self._update(task, total_delta=-1)
        self._refresh()

    def _update(self, task: TaskID, advance: int = 0, total_delta: int = 0) -> None:
        if self._progress is None:
            return
        current = self._progress.tasks[task]
        total = None if current.total is None else max(0, current.total + total_delta)
        self._progress.update(task, advance=advance, total=total)

    def _refresh(self) -> None:
        if self._progress is None or self._overall is None:
            return
        c = self.counts
        self._progress.update(self._overall, detail=(
            f"ok {c['succeeded']}  failed {c['failed']}  rolled back {c['rolled_back']}  "
            f"refused {c['refused']}  in flight {len(self._in_flight)}  "
            f"retries {c['retries']}  API retries {c['api_retries']} ({c['throttled']} throttled)"))
        for step, task in self._steps.items():
            self._progress.update(task, detail=(
                f"failed {self._failed.get(step, 0)}  running {len(self._running[step])}"))
