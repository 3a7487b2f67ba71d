"""The leases (``--lock-table``) of a run on Step Functions, tied to its executions.

An execution goes on in AWS whatever happens to the laptop that started it, so
the leases of its targets must not be given back while it may still run:

* before an execution starts, its ARN is written into its targets' leases
  (:meth:`TargetLeases.bind_execution`); once such a lease expires (this
  process stopped renewing it), another run asks Step Functions and keeps off
  the target while the execution is RUNNING;
* while following, the leases are renewed at every poll; a renewal that fails
  is said and tried again at the next poll; a lease lost all the same is said
  on the bus (the execution still works on that target);
* at the end of the run every lease is released; after Ctrl-C or an
  unexpected error, only those of targets no execution may be running on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import click

from remediate.actions.contract import Target
from remediate.executor.events import EventBus, Notice
from remediate.executor.leasing import TargetLeases
from remediate.reporters.wording import plural

LOST: Final = ("its execution goes on working on it: check what the other run does to it, "
               "or stop the execution")


class ExecutionLeases:
    """``leases`` None: no lock table; only which targets may be running is tracked."""

    def __init__(self, leases: TargetLeases | None, bus: EventBus) -> None:
        self.leases = leases
        self.bus = bus
        self.running: dict[str, str] = {}  # target key -> the execution that may run it
        if leases is not None:
            leases.watch(bus, {}, LOST)

    def starting(self, targets: Iterable[Target], execution_arn: str) -> None:
        """``execution_arn`` is about to start on ``targets`` (their leases name it first)."""
        keys = [t.key for t in targets]
        self.running.update(dict.fromkeys(keys, execution_arn))
        if self.leases is not None:
            self.leases.bind_execution(keys, execution_arn)

    def ended(self, targets: Iterable[Target]) -> None:
        for target in targets:
            self.running.pop(target.key, None)

    def renew(self) -> None:
        """Renew when due (at each poll of the follower); a failure is said, not raised."""
        if self.leases is None:
            return
        try:
            self.leases.pump()
        except Exception as exc:  # AWS's retries spent: say it, try again at the next poll
            self.bus.publish(Notice("error", f"could not renew the leases in lock table "
                                             f"{self.leases.name}: {exc}; trying again"))

    def release(self) -> None:
        """The run ended: every lease back."""
        if self.leases is not None:
            self.leases.release()

    def stop(self) -> None:
        """Ctrl-C or an error: give back the leases of targets no execution may run on,
        keep the others (they expire, then hold while their execution runs), and say so."""
        if self.leases is None:
            return
        kept = set(self.running) & self.leases.held()
        try:
            self.leases.release(self.leases.held() - kept)
        except Exception as exc:  # never hide the error being raised
            click.echo(f"could not release the leases in lock table {self.leases.name}: {exc}",
                       err=True)
        if kept:
            arns = ", ".join(sorted({self.running[key] for key in kept}))
            click.echo(f"kept the leases of {plural(len(kept), 'target')} in lock table "
                       f"{self.leases.name}: execution {arns} may still be running, and other "
                       "runs keep off its targets while it does", err=True)
