"""What the progress bars show, as a model the terminal reporter draws.

Kept apart from rich so that what the bars say is plain data that can be checked.
The rules (issue 16: after one Ctrl-C every step's bar was full and "rolled back 0"
read although 12 targets were rolled back; a resumed run's bars started from 0):

- a target counts once, by its outcome, in the words and order of the reports
  (:func:`~remediate.reporters.wording.headline`); an interrupted target that was
  rolled back to where it was says so;
- a step's bar counts the targets that finished it; its total leaves out only the
  targets that will never run it (they finished without it: fixed, failed earlier,
  refused, skipped). An interrupted target still needs its steps, so they stay in
  the totals and the bars show how far the run got, not "full";
- the targets bar counts targets done with (interrupted ones are not);
- a resumed run starts from the journal: steps its targets finished before count as
  done, targets that finished count as done;
- a target started again from its first step (a new pass), or an interrupted one
  rolled back to where it was (which ``resume`` starts again), has done none of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from remediate.reporters.record import OUTCOMES

# Outcomes of a target this run is done with (an interrupted one is not).
SETTLED = frozenset(OUTCOMES) - {"interrupted", "not_run"}


@dataclass
class StepBar:
    done: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    running: set[str] = field(default_factory=set)
    never: set[str] = field(default_factory=set)  # targets that will not run it


@dataclass
class Bars:
    targets: tuple[str, ...] = ()
    steps: dict[str, StepBar] = field(default_factory=dict)
    outcome: dict[str, str] = field(default_factory=dict)  # target -> status
    rolled_back: set[str] = field(default_factory=set)  # its rollback ran to the end
    in_flight: set[str] = field(default_factory=set)

    def start(self, targets: Iterable[str], steps: Iterable[str]) -> None:
        self.targets = tuple(targets)
        self.steps = {step: StepBar() for step in steps}

    def step_started(self, key: str, step: str) -> None:
        if step in self.steps:
            self.steps[step].running.add(key)

    def step_finished(self, key: str, step: str, status: str) -> None:
        bar = self.steps.get(step)
        if bar is None:
            return
        bar.running.discard(key)
        bar.done.add(key)
        if status == "failed":
            bar.failed.add(key)

    def restarted(self, key: str) -> None:
        """A new pass: the target runs every step again."""
        for bar in self.steps.values():
            bar.done.discard(key)
            bar.failed.discard(key)
            bar.never.discard(key)
        self.outcome.pop(key, None)
        self.rolled_back.discard(key)

    def finished(self, key: str, status: str, rolled_back: bool = False) -> None:
        self.in_flight.discard(key)
        self.outcome[key] = status
        if rolled_back:
            self.rolled_back.add(key)
        for bar in self.steps.values():
            bar.running.discard(key)
            if status == "interrupted" and rolled_back:  # undone: resume runs them again
                bar.done.discard(key)
                bar.failed.discard(key)
            elif status != "interrupted" and key not in bar.done:
                bar.never.add(key)

    # -- what the bars say ------------------------------------------------------------

    def summary(self) -> dict[str, int]:
        """Counts in the shape of RunRecord.summary(), for the shared wording."""
        counts = dict.fromkeys(OUTCOMES, 0)
        for status in self.outcome.values():
            counts[status if status in counts else "failed"] += 1
        counts["total"] = len(self.targets)
        counts["interrupted_rolled_back"] = sum(
            1 for key in self.rolled_back if self.outcome.get(key) == "interrupted")
        return counts

    def settled(self) -> int:
        return sum(1 for status in self.outcome.values() if status in SETTLED)

    def step_total(self, step: str) -> int:
        return len(self.targets) - len(self.steps[step].never)
