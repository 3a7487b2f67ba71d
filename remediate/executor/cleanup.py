"""The end of every run: each run service's ``finish()`` (the rescue pool's cleanup).

It runs once per (account, Region) the service was used in, after all targets,
also after failures and Ctrl-C, on the same scheduler (paced, journaled, retried)
under a target of the run's kind named after the service. A call of ``finish``
whose outcome is unknown (a 5xx) runs it again from its start, as a step is
reconciled. A failing ``finish`` is reported (a rescue instance kept because a
customer volume is still on it), never raised: the targets' results stand.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from remediate.actions.contract import StepContext, Target
from remediate.executor.context import RunContext
from remediate.executor.events import Notice
from remediate.executor.scheduler import Caller
from remediate.executor.steps import TargetState, failure_text, reconciling


def finish_services(rc: RunContext, kind: str) -> list[str]:
    """Run every used service's ``finish``; what went wrong, one line each."""
    errors: list[str] = []
    for account, region, cls in list(rc.services.places):
        service = rc.services.instances[cls]
        name = cls.__name__
        state = TargetState(Target(kind, f"run-service:{name}", region, account))
        ctx = StepContext(rc.run_id, state.target, {}, rc.runtime(state.target),
                          step_id="finish", dry_run=rc.dry_run, base_dir=rc.base_dir)

        def body(ctx: StepContext = ctx, service: Any = service,
                 state: TargetState = state) -> Any:
            # A lost reply (DetachVolume answered 500) runs finish() again from its
            # start: it reads what is attached and what lives before it acts.
            return (yield from reconciling(
                rc, state, "finish", lambda again: service.finish(replace(ctx, continuing=again)),
                attempt=1, timeout=rc.playbook.execution.default_timeout))

        def done(_result: Any, error: BaseException | None, name: str = name,
                 where: str = f"{account}/{region}") -> None:
            if error is not None:
                text = f"cleanup by {name} in {where} failed: {failure_text(name, error)[0]}"
                errors.append(text)
                rc.bus.publish(Notice("error", text))

        state.task = rc.scheduler.spawn(f"finish {name}", body(),
                                        Caller(account, region, f"run:{rc.run_id}", "finish"),
                                        done)
    try:
        rc.scheduler.run()
    finally:
        rc.journal.commit()
    return errors
