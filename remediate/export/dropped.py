"""What of a playbook Step Functions does not run as the local engine does: one warning each.

`export`, `deploy` and `run --engine stepfunctions` print these on stderr (the
definition still compiles: the playbook runs, without them). The README's
"What does not export" list says the same; a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Mapping

from remediate.actions import registry
from remediate.language.model import BatchSize, Playbook

FINDINGS: str = ("pre-flight findings and --accept are judged by `remediate run --engine "
                 "stepfunctions` only: an execution started otherwise (console, CLI, "
                 "EventBridge) works on every target it is given")


def dropped(playbook: Playbook, *, judged_by_run: bool = False,
            rate_limits: Mapping[str, object] | None = None) -> list[str]:
    """One line per feature of ``playbook`` that does not export. ``judged_by_run``: the
    caller (`run --engine stepfunctions`) does the pre-flight itself; ``rate_limits``:
    its ``--rate-limit`` overrides."""
    lines: list[str] = []
    steps = (*playbook.steps, *playbook.rollback)
    timed = [step.id for step in steps if step.timeout is not None]
    if timed:
        which = "step" if len(timed) == 1 else "steps"
        lines.append(f"step timeouts do not export ({which} {', '.join(timed)}): on Step "
                     "Functions a step ends only when its own waits give up")
    if playbook.execution.rate_limits or rate_limits:
        lines.append("client-side rate limits do not export (execution.rate_limits, "
                     "--rate-limit): Step Functions paces no call; throttled calls are retried")
    later = playbook.guards.batches[1:]
    if playbook.guards.rollout == "ramp" and later and later != (BatchSize(percent=100.0),):
        lines.append("the ramp (guards.rollout: ramp) does not export: on Step Functions the "
                     "batches after the canary are barriers, each Map Run starting when the "
                     "previous one has ended (as with rollout: batches)")
    budget = playbook.guards.max_failure_percent
    if budget < 100:
        lines.append(f"the failure budget (guards.max_failure_percent: {budget:g}%) counts per "
                     "batch on Step Functions (each Map Run alone), not over the whole run")
    actions = (registry.get(step.action) for step in steps)
    lines.extend(dict.fromkeys(a.export_note for a in actions if a and a.export_note))
    if not judged_by_run:
        lines.append(FINDINGS)
    return lines
