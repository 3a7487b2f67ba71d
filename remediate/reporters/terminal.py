"""The terminal reporter: live progress bars on a TTY, one line per event elsewhere.

Progress mode shows a bar for all targets (each counted once by its outcome, as
the reports count them; in flight, retries, API throttling, ETA) and one per step
(done, failed, running), drawn from :class:`~remediate.reporters.bars.Bars`;
failures, refusals, retries and notices print above the bars. While the question
after the canary batch waits for an answer the bars stop repainting (they would
draw over the question), with how the canary fared printed just above it.
Plain mode (not a TTY, or ``--no-progress``) prints every event as one line, for
CI logs. Output goes to the console given, by default standard error, so
``--format json`` on standard output stays parseable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TextIO

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from remediate.aws.errors import ErrorClass, classify
from remediate.executor.events import (
    AlarmStopped,
    ApiRetrying,
    BatchStarted,
    BudgetExhausted,
    CanaryAnswered,
    CanaryQuestion,
    Event,
    Interrupted,
    Notice,
    RampWidened,
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
from remediate.reporters.bars import Bars
from remediate.reporters.lines import line
from remediate.reporters.record import put_back
from remediate.reporters.subscriber import Subscriber
from remediate.reporters.wording import outcomes

# Events worth a line above the progress bars (the rest only move the bars).
_NOTABLE = (BatchStarted, RollbackStarted, StepRetrying, BudgetExhausted, Interrupted, Notice,
            RunFinished, RunResumed, TargetRestarted, CanaryQuestion,
            AlarmStopped, RampWidened)


def _notable(event: Event) -> bool:
    # A refused target's TargetInspected is not: its TargetFinished says why, once.
    if isinstance(event, StepFinished):
        return event.status == "failed" or event.rollback
    if isinstance(event, TargetFinished):
        return event.status != "succeeded"
    return isinstance(event, _NOTABLE)


class _Progress(Progress):
    """rich's progress table with the run's status line above it: a line of its own that
    may wrap, so the bars keep their width in a narrow terminal."""

    status = ""

    def get_renderables(self) -> Iterable[RenderableType]:
        yield Text(self.status, overflow="fold")
        yield self.make_tasks_table(self.tasks)


class TerminalReporter(Subscriber):
    def __init__(
        self, out: Console | TextIO | None = None, *, progress: bool | None = None,
        said: Mapping[str, str] | None = None,
    ) -> None:
        """``said``: refusals the operator was already shown (target key -> why), by the
        question before the run; they are not printed again (one that differs is)."""
        if isinstance(out, Console):
            self.console = out
        else:
            self.console = Console(file=out) if out is not None else Console(stderr=True)
        self.live = self.console.is_terminal if progress is None else progress
        self.said = dict(said or {})
        self._progress: _Progress | None = None
        self._paused = False
        self._overall: TaskID | None = None
        self._steps: dict[str, TaskID] = {}
        self.bars = Bars()
        self.retries = {"retries": 0, "api_retries": 0, "throttled": 0}

    @property
    def counts(self) -> dict[str, int]:
        """Targets by outcome (as the reports count them) and the retries so far."""
        return {**self.bars.summary(), **self.retries}

    def print(self, text: str) -> None:
        console = self._progress.console if self._progress is not None else self.console
        console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)

    def seen(self, event: Event) -> None:
        if isinstance(event, CanaryQuestion):
            self._pause()  # first: the summary and the question go below the bars
        if self.live and not _notable(event):
            return
        if (isinstance(event, TargetFinished) and event.status == "refused"
                and self.said.get(event.target.key) == event.error):
            return  # the question before the run listed it
        text = line(event)
        if text is not None:
            self.print(text)

    # -- state the bars show ----------------------------------------------------------------

    def on_run_started(self, event: RunStarted) -> None:
        self.bars.start((t.key for t in event.targets), event.steps)
        if not self.live:
            return
        self._progress = _Progress(
            TextColumn("{task.description:<18}"), BarColumn(bar_width=30),
            MofNCompleteColumn(), TextColumn("{task.fields[detail]}"), TimeRemainingColumn(),
            console=self.console, transient=False)
        total = len(event.targets)
        self._overall = self._progress.add_task("targets", total=total, detail="")
        for step in event.steps:
            self._steps[step] = self._progress.add_task(f"  {step}", total=total, detail="")
        self._progress.start()
        self._refresh()

    def on_target_inspected(self, event: TargetInspected) -> None:
        if event.refused is not None:
            self.bars.finished(event.target.key, "refused")
            self._refresh()

    def on_target_resumed(self, event: TargetResumed) -> None:
        """The target as the journal has it: the bars start from there, not from 0."""
        key = event.target.key
        for step in event.steps:
            if not step.rollback and step.status in ("succeeded", "failed", "skipped"):
                self.bars.step_finished(key, step.step_id, step.status)
        if event.phase == "done" and event.status is not None:
            self.bars.finished(key, event.status, put_back(event))
        self._refresh()

    def on_target_restarted(self, event: TargetRestarted) -> None:
        self.bars.restarted(event.target.key)
        self._refresh()

    def on_target_started(self, event: TargetStarted) -> None:
        self.bars.in_flight.add(event.target.key)
        self._refresh()

    def on_step_started(self, event: StepStarted) -> None:
        self.bars.step_started(event.target.key, event.step_id)
        self._refresh()

    def on_step_retrying(self, event: StepRetrying) -> None:
        self.retries["retries"] += 1
        self._refresh()

    def on_api_retrying(self, event: ApiRetrying) -> None:
        self.retries["api_retries"] += 1
        if classify(event.code) is ErrorClass.THROTTLED:
            self.retries["throttled"] += 1
        self._refresh()

    def on_step_finished(self, event: StepFinished) -> None:
        if not event.rollback:
            self.bars.step_finished(event.target.key, event.step_id, event.status)
        self._refresh()

    def on_target_finished(self, event: TargetFinished) -> None:
        self.bars.finished(event.target.key, event.status, event.rolled_back)
        self._refresh()

    def on_canary_answered(self, event: CanaryAnswered) -> None:
        if self._progress is not None and self._paused:
            self._paused = False
            self._progress.start()

    def on_run_finished(self, event: RunFinished) -> None:
        if self._progress is not None:
            self._refresh()
            if not self._paused:
                self._progress.stop()
            self._progress = None

    def _pause(self) -> None:
        """Stop repainting (a question is being asked below the bars) until the answer."""
        if self._progress is not None and not self._paused:
            self._refresh()
            self._progress.stop()
            self._paused = True

    def _refresh(self) -> None:
        if self._progress is None or self._overall is None:
            return
        bars, r = self.bars, self.retries
        self._progress.status = (
            f"targets: {outcomes(bars.summary(), 'succeeded')}; in flight "
            f"{len(bars.in_flight)}; retries {r['retries']}; API retries {r['api_retries']} "
            f"({r['throttled']} throttled)")
        self._progress.update(self._overall, completed=bars.settled())
        for step, task in self._steps.items():
            bar = bars.steps[step]
            self._progress.update(task, completed=len(bar.done), total=bars.step_total(step),
                                  detail=f"failed {len(bar.failed)}  running {len(bar.running)}")
