"""One target's way through a run: inspect, judge, steps, rollback; journaled at each turn.

Failure handling per step (``on_failure``): ``continue`` records the failure and
goes on (later steps can test ``steps.<id>.status``); ``abort`` stops the target,
failed, without rollback; ``rollback`` (the default) runs the playbook's
``rollback`` steps if the target got past a mutation (a mutating call AWS did not
reject): the target ends ``rolled_back`` if every rollback step succeeded or was
skipped, else ``failed``. Rollback steps are best effort: a failed one does not
stop the next unless its own ``on_failure`` is ``abort``; they read the kind of the
failure that started them at ``run.failure`` (a start refused for capacity is not
tried again).

A step that fails declaring it left the target as it found it (a failure of kind
``UNTOUCHED``: ``ec2.stop`` whose capacity could not be held) ends the target
``refused`` with the reason, without rollback, unless an earlier step that ran may
have changed the target (an action that only makes things beside it, a backup
snapshot, does not count): then it is a failure like any other. Like other refused
targets it is off the failure budget; ``--retry-failed`` takes it up again.

A step whose call had an unknown outcome that AWS's state did not settle (see
:class:`~remediate.executor.steps.Unsettled`) is treated like a Ctrl-C for that target
alone: rolled back if it got past a mutation, ``interrupted``, not counted against the
failure budget.

Ctrl-C (see :mod:`remediate.executor.engine`): once, no new step starts; a
target that got past a mutation is rolled back (the safe state for a volume swap
is "volume back on its instance") and ends ``interrupted`` too, not counted against
the failure budget; so does one whose step failed and was not retried because the
run was stopping. ``resume`` starts it again from its first step, in a new *pass*
(the journal scopes step rows to a pass, so nothing of the rolled-back attempt is
taken for the new one); others ``resume`` continues where they stopped. Twice, no
rollback step starts either and waits are abandoned; those targets stay journaled
mid-way (``interrupted``) for ``resume``, which finishes a rollback the operator
caused, then starts the target again.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from remediate.actions import registry
from remediate.actions.contract import Target
from remediate.actions.requests import UNTOUCHED
from remediate.executor.context import RunContext
from remediate.executor.events import (
    RollbackStarted,
    TargetFinished,
    TargetInspected,
    TargetRestarted,
    TargetStarted,
    TargetStatus,
)
from remediate.executor.scheduler import Abandoned
from remediate.executor.steps import (
    TargetState,
    drive,
    failure_kind,
    failure_text,
    run_step,
)
from remediate.journal import FINISHED_STATUSES, StepRecord, TargetRecord
from remediate.kinds import KINDS
from remediate.language.model import Step
from remediate.language.problems import Problems
from remediate.plans.drift import drift

ALREADY_HEALTHY = "already-healthy"
RESTART = "restart"
"""The phase of a target rolled back because the run was stopped: it starts again."""
ROLLBACK = "rollback"
"""The phase of a target rolling back after a failure."""
STOP_ROLLBACK = "stop-rollback"
"""The phase of a target rolling back because the run was stopped (no failure)."""

Outcome = tuple[TargetStatus, str | None]


def refusal(step_id: str, error: str | None) -> str:
    """Why a target ends ``refused`` by a step that left it as it found it (a failure
    of kind UNTOUCHED, no earlier step having changed it): nothing to roll back."""
    return f"step {step_id} refused: {error}"
Flow = Generator[Any, Any, Outcome]


class TargetRunner:
    def __init__(self, rc: RunContext, target: Target, record: TargetRecord | None = None) -> None:
        self.rc = rc
        self.state = TargetState(target, facts=dict(record.facts or {}) if record else {})
        self.record = record
        self.status: TargetStatus | None = None
        self.error: str | None = None
        # Where it is, as the journal says (see remediate.journal.records.Phase).
        self.phase = record.phase if record else "pending"
        # Its rollback in this run ran to the end (TargetFinished.rolled_back).
        self.put_back = False

    @property
    def target(self) -> Target:
        return self.state.target

    @property
    def mutated(self) -> bool:
        prior = self.record is not None and self.record.mutated
        return prior or self.target.key in self.rc.calls.mutated

    def enter(self, phase: str, **details: Any) -> None:
        self.phase = phase
        self.rc.journal.set_target(self.rc.run_id, self.target, self.rc.now(), phase=phase,
                                   **details)

    def finish(self, status: TargetStatus, error: str | None = None) -> None:
        """The target's end in this run; an ``interrupted`` one keeps its phase for resume
        (one in phase ``restart`` starts its next pass: resume runs it from its first step)."""
        self.status, self.error = status, error
        if status in FINISHED_STATUSES:
            self.phase = "done"
        self.rc.journal.set_target(self.rc.run_id, self.target, self.rc.now(), phase=self.phase,
                                   status=status, error=error, new_pass=self.phase == RESTART)
        self.rc.bus.publish(TargetFinished(self.target, status, error,
                                           rolled_back=self.put_back))

    # ---- pre-flight -----------------------------------------------------------------

    def inspection(self) -> Generator[Any, Any, str | None]:
        """Inspect and judge the target; returns why it is refused (None: it may go on)."""
        rc, target = self.rc, self.target
        self.state.doing = "inspection"
        try:
            facts, error = yield from self._inspect()
        except Abandoned:
            self.finish("interrupted", "stopped during inspection")
            return "interrupted"
        if facts is None:
            reason = f"inspection failed: {error}"
            self.finish("refused", reason)
            return reason
        self.state.facts = facts
        moved = self._moved_since_plan(facts)
        if moved:
            rc.bus.publish(TargetInspected(target, facts, (), moved))
            self.enter("inspected", facts=facts)
            self.finish("refused", moved)
            return moved
        findings, refusal = rc.policy.judge(target.kind, facts)
        rc.bus.publish(TargetInspected(target, facts, findings, refusal))
        self.enter("inspected", facts=facts)
        if refusal:
            self.finish("refused", refusal)
        elif rc.playbook.guards.skip_healthy and any(
                f.kind == ALREADY_HEALTHY for f in findings):
            refusal = f"already healthy ({KINDS[target.kind].healthy})"
            self.finish("skipped", refusal)
        return refusal

    def _moved_since_plan(self, facts: dict[str, Any]) -> str | None:
        """``run --plan``: why the target is refused because it changed since the plan was
        approved (None: it did not, or there is no plan)."""
        approved = self.rc.approved
        if approved is None:
            return None
        target = self.target
        pinned = approved.get(target.key)
        if pinned is None:  # the CLI runs only a plan's targets: a bug if reached
            return f"{target.id} is not in the approved plan"
        changes = drift(target.kind, pinned, facts)
        if not changes:
            return None
        return (f"changed since the plan was approved: {target.id}: {'; '.join(changes)} "
                "(plan again to approve it as it is now)")

    def _inspect(self) -> Generator[Any, Any, tuple[dict[str, Any] | None, str | None]]:
        rc, target = self.rc, self.target
        name = rc.inspect_actions.get(target.kind)
        action = registry.get(name) if name else None
        if action is None:
            return None, f"no inspect action {name!r} for kind {target.kind!r}"
        problems = Problems()
        params = action.params.check(
            action.inspect_params(rc.policy.relevant, rc.policy.rescue_image_id,
                                 rc.policy.rescue_instance_profile, rc.policy.attacher),
            ("inspect",),
            problems)
        if problems:  # its params come from the playbook's: checked before the run starts
            return None, f"cannot inspect: {problems.summary()}"
        assert self.state.task is not None
        self.state.task.caller.step_id = "inspect"
        try:
            facts = yield from drive(rc, self.state.task,
                                     action.run(self.state.context(rc, "inspect", params), params),
                                     rc.playbook.execution.default_timeout)
        except Abandoned:
            raise
        except Exception as exc:
            return None, failure_text(action.name, exc)[0]
        return facts, None

    # ---- steps and rollback --------------------------------------------------------

    def work(self) -> Generator[Any, Any, TargetStatus]:
        rc = self.rc
        rc.bus.publish(TargetStarted(self.target))
        try:
            if self.phase in (ROLLBACK, STOP_ROLLBACK):
                status, error = yield from self._resume_rollback()
            else:
                if self.phase == RESTART:
                    rc.bus.publish(TargetRestarted(self.target, self.record.error
                                                   if self.record else None))
                self.enter("steps")
                status, error = yield from self._steps()
        except Abandoned:
            status, error = "interrupted", (f"stopped while in {self.state.doing} (Ctrl-C "
                                            "twice); `remediate resume` continues it")
        self.finish(status, error)
        return status

    def _resume_rollback(self) -> Flow:
        """Finish the rollback a previous process of the run was in. One the operator
        caused (Ctrl-C) is no failure: the target then starts again from its first step,
        unless the run is being stopped again."""
        assert self.record is not None
        if self.phase == ROLLBACK:
            return (yield from self._rollback(self.record.rollback_reason
                                              or self.record.error or "resumed",
                                              failure=self._failure_kind()))
        status, error = yield from self._rollback("finishing the rollback a Ctrl-C started",
                                                  stopped=True)
        if self.phase != RESTART or self.rc.stop_level or self.target.key in self.rc.lost:
            return status, error
        self._new_pass(error)
        self.enter("steps")
        return (yield from self._steps())

    def _failure_kind(self) -> str | None:
        """The kind of the step failure the journaled rollback was started by (None: none
        was journaled, or a journal an older remediate wrote)."""
        assert self.record is not None
        failed = [s for s in self.record.steps if not s.rollback and s.status == "failed"]
        return failure_kind(failed[-1].outputs) if failed else None

    def _new_pass(self, why: str | None) -> None:
        """Start the target again from its first step: what its earlier pass did (step
        statuses, outputs, mutations) is history, in the journal and here."""
        rc, key = self.rc, self.target.key
        rc.journal.set_target(rc.run_id, self.target, rc.now(), phase=RESTART, error=why,
                              new_pass=True)
        self.state.statuses.clear()
        self.state.outputs.clear()
        rc.calls.mutated.discard(key)
        self.record = None
        self.put_back = False
        rc.bus.publish(TargetRestarted(self.target, why))

    def _steps(self) -> Flow:
        rc, playbook = self.rc, self.rc.playbook
        for index, step in enumerate(playbook.steps):
            prior = self._resumed(step, rollback=False)
            if prior is not None and prior.status != "running":
                if prior.status == "failed" and step.on_failure != "continue":
                    kind = failure_kind(prior.outputs)
                    if kind == UNTOUCHED and not self._changed_before(index):
                        return "refused", refusal(step.id, prior.error)
                    return (yield from self._failed(step.on_failure,
                                                    f"step {step.id} failed: {prior.error}",
                                                    kind))
                continue
            if self.target.key in rc.lost:
                return "interrupted", (f"{rc.lost[self.target.key]}; stopped before step "
                                       f"{step.id}, not rolled back")
            if rc.stop_level >= 1:
                return (yield from self._stopped(f"before step {step.id}"))
            outcome = yield from run_step(rc, self.state, step, ("steps", index),
                                          attempts_before=prior.attempts if prior else 0)
            if outcome.refused is not None:  # stop here, as it is: nothing failed
                return "refused", f"stopped before step {step.id}: {outcome.refused}"
            if outcome.unsettled:
                return (yield from self._unsettled(step, outcome.error or ""))
            if outcome.status == "failed" and step.on_failure != "continue":
                if outcome.cut_short:  # a retry would have run, but for the Ctrl-C
                    return (yield from self._stopped(
                        f"during step {step.id} ({outcome.error})", restart=True))
                if outcome.untouched and not self._changed_before(index):
                    return "refused", refusal(step.id, outcome.error)
                return (yield from self._failed(step.on_failure,
                                                f"step {step.id} failed: {outcome.error}",
                                                outcome.kind))
        return "succeeded", None

    def _changed_before(self, index: int) -> bool:
        """Whether a step before the ``index``-th may have changed the target itself: one
        that ran (succeeded or failed) of an action that changes the target (not one that
        only makes things beside it, a backup snapshot say)."""
        for step in self.rc.playbook.steps[:index]:
            action = registry.get(step.action)
            ran = self.state.statuses.get(step.id) in ("succeeded", "failed")
            if ran and (action is None or action.changes_target):
                return True
        return False

    def _resumed(self, step: Step, rollback: bool) -> StepRecord | None:
        """The journal's record of ``step`` in this pass, from before a resume, if any. A
        step that had finished is not run again: its status and outputs are reloaded here."""
        prior = self.record.step(step.id, rollback) if self.record else None
        if prior is not None and prior.status != "running":
            self.state.statuses[step.id] = prior.status
            self.state.outputs[step.id] = dict(prior.outputs)
        return prior

    def _failed(self, on_failure: str, error: str, kind: str | None = None) -> Flow:
        """The target's step failed (``kind``: its StepFailed's, for the rollback steps)."""
        if on_failure == "rollback" and self.mutated and self.rc.playbook.rollback:
            return (yield from self._rollback(error, failure=kind))
        return "failed", error

    def _stopped(self, where: str, restart: bool = False) -> Flow:
        """The run is stopping: put the target back where it was if it was touched, and
        leave it ``interrupted`` (never a failure). ``restart``: its steps so far cannot be
        taken up again (one failed), so it starts again even if nothing was touched."""
        reason = f"interrupted by the operator {where}"
        if self.mutated and self.rc.playbook.rollback:
            return (yield from self._rollback(reason, stopped=True))
        if restart:
            self.phase = RESTART
            return "interrupted", f"{reason}; `remediate resume` starts it again"
        return "interrupted", f"{reason}; `remediate resume` continues it"

    def _unsettled(self, step: Step, error: str) -> Flow:
        """AWS's state did not settle what one of the step's calls did: not a failure of
        the target (it does not count against the failure budget). Like a Ctrl-C, it is
        rolled back if it got past a mutation (unless the step says abort) and ends
        ``interrupted``, for ``resume``."""
        reason = f"step {step.id}: {error}"
        if step.on_failure != "abort" and self.mutated and self.rc.playbook.rollback:
            return (yield from self._rollback(reason, stopped=True))
        return "interrupted", f"{reason}; `remediate resume` continues it"

    def _rollback(self, reason: str, stopped: bool = False,
                  failure: str | None = None) -> Flow:
        """Run the rollback steps. ``stopped``: the operator stopped the run (no failure):
        a target put back where it was ends ``interrupted``, to start again (RESTART).
        ``failure``: the kind of the step failure that started it (rollback steps read it
        at ``run.failure``; after a resume, as journaled with the failed step)."""
        rc, target = self.rc, self.target
        rc.bus.publish(RollbackStarted(target, reason))
        self.enter(STOP_ROLLBACK if stopped else ROLLBACK, error=reason, rollback_reason=reason)
        problems: list[str] = []
        for index, step in enumerate(rc.playbook.rollback):
            prior = self._resumed(step, rollback=True)
            if prior is not None and prior.status != "running":
                if prior.status == "failed":
                    problems.append(f"rollback step {step.id} failed: {prior.error}")
                continue
            if rc.stop_level >= 2 or target.key in rc.lost:
                why = rc.lost.get(target.key, "Ctrl-C twice")
                return "interrupted", (f"{reason}; rollback interrupted before step {step.id} "
                                       f"({why}); `remediate resume` continues it")
            outcome = yield from run_step(rc, self.state, step, ("rollback", index),
                                          rollback=True,
                                          attempts_before=prior.attempts if prior else 0,
                                          failure=failure)
            if outcome.unsettled:
                return "interrupted", (f"{reason}; rollback step {step.id}: {outcome.error}; "
                                       "`remediate resume` continues the rollback")
            if outcome.status == "failed":
                problems.append(f"rollback step {step.id} failed: {outcome.error}")
                if step.on_failure == "abort":
                    break
        if problems:
            return "failed", f"{reason}; " + "; ".join(problems)
        self.put_back = True
        if not stopped:
            return "rolled_back", reason
        # Put back where it was by the operator's choice, not by a failure: it does not
        # count against the failure budget, and `resume` starts it again from its first step.
        self.phase = RESTART
        return "interrupted", f"{reason}; rolled back to where it was; `remediate resume` " \
                              "starts it again"
