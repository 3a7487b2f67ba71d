"""One target's way through the state machine: inspect, steps, rollback, cleanup, outcome.

The iteration state is ``{"target": facts, "run": {"id"}, "steps": {id: {status,
outputs}}}``. Each step is a Parallel state with one branch (its action's
fragment), so the step's ``retries`` are the Parallel's ``Retry`` (the whole
step again, with backoff and full jitter) and ``on_failure`` is its ``Catch``:

* ``continue``: ``steps.<id>.status`` becomes ``failed`` and the next step runs;
* ``abort``: the target fails, no rollback;
* ``rollback``: once a mutating step has started (the local executor's "got past
  a mutation", decided here from the step order), the rollback steps run, each
  best effort (a failed one is recorded and the next runs unless its own
  ``on_failure`` is ``abort``).

A step whose action destroys data and that the local engine judges at the step (one
behind a ``when``: WorkSpaces' restore) stops the target there, refused, unless the
operator accepted its finding kind (``--accept``, compiled in): no rollback, as locally.

State names: a step's are its id or start with it and a dot; the iteration's own
(below) and the machine's (see :mod:`remediate.export.compiler`) are names no step id
can take (:data:`RESERVED`, or with a space), so no two states share a name.

Every way out goes through the actions' cleanup (rescue instances) and ends in
one of: Succeed, or Fail with ``remediate.Refused`` (inspection failed, a step
refused, or a step failed leaving the target untouched: :mod:`remediate.export.untouched`),
``remediate.Failed``, ``remediate.RolledBack``, ``remediate.RollbackFailed`` or
``remediate.CleanupFailed``; the cause names the step and AWS's or the action's
message. Those Fails are what the Distributed Map counts against
``ToleratedFailurePercentage``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from remediate.actions import registry
from remediate.actions.contract import Action
from remediate.executor.preflight_policy import PreflightPolicy
from remediate.export import asl, program_asl, untouched
from remediate.export.asl import State, States
from remediate.export.conditions import rule
from remediate.export.errors import NotExportable
from remediate.export.fragment import AslStep, Fragment
from remediate.export.templates import bind
from remediate.kinds import KINDS
from remediate.language.model import Playbook, Retries, Step
from remediate.language.problems import Problems

INSPECT: Final = "inspect"
CLEANUP: Final = "cleanup"
OUTCOME: Final = "outcome"
ERRORS: Final = {
    "refused": "remediate.Refused",
    "failed": "remediate.Failed",
    "rolled_back": "remediate.RolledBack",
    "rollback_failed": "remediate.RollbackFailed",
    "cleanup_failed": "remediate.CleanupFailed",
}


# The iteration's and the machine's state names a step id could take.
RESERVED: Final = frozenset({"targets", INSPECT, "facts", "refused", CLEANUP, OUTCOME,
                             "rollback", "succeeded", *ERRORS})


def step_retry(retries: Retries) -> list[dict[str, Any]]:
    """The step's ``retries`` as a Retry on its Parallel state (the whole step again)."""
    if retries.attempts <= 1:
        return []
    return [{"ErrorEquals": ["States.ALL"],
             "IntervalSeconds": max(1, round(retries.initial_delay)),
             "MaxAttempts": retries.attempts - 1,
             "BackoffRate": max(1.0, float(retries.multiplier)),
             "MaxDelaySeconds": max(1, round(retries.max_delay)),
             "JitterStrategy": "FULL" if retries.jitter else "NONE"}]


def parallel(fragment: Fragment, next_state: str, *, result_path: str | None,
             result_selector: Mapping[str, Any] | None = None,
             retry: Sequence[dict[str, Any]] = (),
             catch: Sequence[dict[str, Any]] = ()) -> State:
    state: State = {"Type": "Parallel",
                    "Branches": [{"StartAt": fragment.start, "States": fragment.states}]}
    if result_selector is not None:
        state["ResultSelector"] = result_selector
    state["ResultPath"] = result_path
    if retry:
        state["Retry"] = list(retry)
    if catch:
        state["Catch"] = list(catch)
    state["Next"] = next_state
    return state


def catch_all(result_path: str, next_state: str) -> dict[str, Any]:
    return {"ErrorEquals": ["States.ALL"], "ResultPath": result_path, "Next": next_state}


@dataclass
class Iteration:
    """Builds the states of one target's iteration (the Map's ItemProcessor)."""

    playbook: Playbook
    params: Mapping[str, Any]
    facts: Collection[str]
    accepted: frozenset[str] = frozenset()
    base_dir: str = "."
    states: States = field(default_factory=dict)
    cleanups: dict[str, Fragment] = field(default_factory=dict)
    policy: PreflightPolicy = field(init=False)  # how the local engine judges the targets

    # ---- the whole thing ------------------------------------------------------------

    def build(self) -> dict[str, Any]:
        pb = self.playbook
        steps = list(pb.steps)
        for step in (*steps, *pb.rollback):
            if step.id in RESERVED or step.id.startswith(f"{CLEANUP}_"):
                raise NotExportable(f"step {step.id}", "its id names one of the state "
                                    "machine's own states: give the step another id")
        self.policy = PreflightPolicy.for_playbook(pb, self.params, self.accepted)
        first_mutation = next((i for i, s in enumerate(steps) if self._action(s).mutating),
                              len(steps))
        rollback_entry = self._rollback() if pb.rollback else None
        end = CLEANUP
        entries = [self._entry(s) for s in steps]
        for index, step in enumerate(steps):
            after = entries[index + 1] if index + 1 < len(steps) else end
            on_fail = end
            if (step.on_failure == "rollback" and rollback_entry is not None
                    and index >= first_mutation):
                on_fail = rollback_entry
            self._step(step, after, on_fail, before=steps[:index])
        self._inspect(entries[0] if entries else end)
        self._finish()
        return {"StartAt": INSPECT, "States": self.states}

    # ---- pieces ---------------------------------------------------------------------------

    def _action(self, step: Step) -> Action:
        action = registry.get(step.action)
        if action is None:
            raise NotExportable(step.action, "no such action")
        return action

    def _aslstep(self, step_id: str, action: Action, params: Mapping[str, Any]) -> AslStep:
        return AslStep(step_id=step_id, action=action.name, params=params,
                       poll_seconds=max(1, round(self.playbook.execution.poll_interval)),
                       base_dir=self.base_dir, accepted=self.accepted)

    def _add(self, states: States) -> None:
        clash = set(self.states) & set(states)
        if clash:
            raise ValueError(f"state names defined twice: {', '.join(sorted(clash))}")
        self.states.update(states)

    def _inspect(self, first: str) -> None:
        """The kind's inspect action, with the parameters the local engine gives it (what
        to read depends on the playbook's risks and rescue image)."""
        action = registry.get(KINDS[self.playbook.targets.kind].inspect_action)
        assert action is not None
        policy = self.policy
        params = action.params.check(
            action.inspect_params(policy.relevant, policy.rescue_image_id,
                                 policy.rescue_instance_profile), ("inspect",),
            Problems())
        fragment = program_asl.fragment(action, self._aslstep(INSPECT, action, params))
        self._add({
            INSPECT: parallel(fragment, "facts", result_path="$.inspected",
                              result_selector={"facts.$": "$[0]"},
                              catch=[catch_all("$.error", "refused")]),
            "facts": asl.pass_state(first, parameters={
                "target": asl.path("$.inspected.facts"), "run": asl.path("$.run"), "steps": {}}),
            "refused": asl.fail(ERRORS["refused"], asl.fmt(
                "inspection failed: ", asl.path("$.error.Cause"))),
        })

    def _entry(self, step: Step) -> str:
        """Where the flow enters ``step``: its ``when`` Choice, or the step itself."""
        if step.when is None:
            return step.id
        decided = rule(step.when, self.params, self.facts, f"step {step.id} when")
        if decided is True:
            return step.id
        if decided is False:
            return f"{step.id}.skipped"
        return f"{step.id}.when"

    def _step(self, step: Step, after: str, on_fail: str, *,
              rollback_errors: bool = False, before: Sequence[Step] = ()) -> None:
        """``before``: the steps before it (a failure that left the target untouched
        refuses it only if none of them changed it: :mod:`remediate.export.untouched`)."""
        action = self._action(step)
        decided = (None if step.when is None
                   else rule(step.when, self.params, self.facts, f"step {step.id} when"))
        if decided is False:
            # Never runs with these parameters: only its skip is compiled (its `with`
            # may name a parameter that is not given, e.g. replace-root's snapshot_id).
            self._add({f"{step.id}.skipped": asl.pass_state(
                after, result={"status": "skipped", "outputs": {}},
                result_path=f"$.steps.{step.id}")})
            return
        states: States = {}
        refusal = None if rollback_errors else self.policy.step_refusal(action)
        if refusal is None:
            params = bind(action, step.id, step.params, self.params, self.facts)
            fragment = program_asl.fragment(action, self._aslstep(step.id, action, params))
            cleanup = program_asl.cleanup_fragment(action, self._aslstep(
                f"{CLEANUP}_{action.name.split('.')[0]}", action, {}), params)
            if cleanup is not None:
                self.cleanups.setdefault(cleanup.start, cleanup)
        if isinstance(decided, dict):  # decided at run time (True: it always runs)
            skipped = f"{step.id}.skipped"
            states[skipped] = asl.pass_state(after, result={"status": "skipped", "outputs": {}},
                                             result_path=f"$.steps.{step.id}")
            states[f"{step.id}.when"] = asl.choice([(decided, step.id)], skipped)
        if refusal is not None:
            # As the local engine: data loss not accepted (--accept) stops the target
            # here, as it is; nothing failed, nothing is rolled back.
            states[step.id] = asl.pass_state(CLEANUP, result={
                "step": step.id, "Cause": f"stopped before step {step.id}: {refusal}"},
                result_path="$.refused")
            self._add(states)
            return
        if (action.destructive and not action.finds_its_request
                and step.retries.attempts > 1):
            # A retry re-runs the branch afresh: it cannot know the request went, and a
            # data-destroying one is never sent twice (locally the journal knows).
            raise NotExportable(f"step {step.id} ({action.name})", "retries do not export for "
                                "a step that destroys data: a retry on Step Functions cannot "
                                "know its request was sent; remove the step's retries")
        if rollback_errors:
            catch = catch_all(f"$.rollback_errors.{step.id}", on_fail if step.on_failure ==
                              "abort" else after)
        elif step.on_failure == "continue":
            catch = catch_all(f"$.steps.{step.id}", f"{step.id}.continue")
            states[f"{step.id}.continue"] = asl.pass_state(
                after, result="failed", result_path=f"$.steps.{step.id}.status")
        else:
            catch = catch_all("$.error", f"{step.id}.failed")
            states[f"{step.id}.failed"] = asl.pass_state(on_fail, parameters={
                "step": step.id, "Error": asl.path("$.error.Error"),
                "Cause": asl.path("$.error.Cause")}, result_path="$.error")
        catches = [catch]
        if not rollback_errors and step.on_failure != "continue" and untouched.may_fail(
                fragment):
            states.update(untouched.states(step.id, before, on_fail, CLEANUP))
            catches.insert(0, untouched.catch(step.id))
        states[step.id] = parallel(
            fragment, after, result_path=f"$.steps.{step.id}",
            result_selector={"status": "succeeded", "outputs.$": "$[0]"},
            retry=step_retry(step.retries), catch=catches)
        self._add(states)

    def _rollback(self) -> str:
        steps = list(self.playbook.rollback)
        entries = [self._entry(s) for s in steps]
        for index, step in enumerate(steps):
            after = entries[index + 1] if index + 1 < len(steps) else CLEANUP
            self._step(step, after, CLEANUP, rollback_errors=True)
        self._add({"rollback": asl.pass_state(entries[0], result=True,
                                              result_path="$.rolled_back")})
        return "rollback"

    def _finish(self) -> None:
        if self.cleanups:
            fragments = list(self.cleanups.values())
            self._add({CLEANUP: {
                "Type": "Parallel",
                "Branches": [{"StartAt": f.start, "States": f.states} for f in fragments],
                "ResultPath": None,
                "Retry": step_retry(Retries(attempts=3, initial_delay=10, max_delay=120)),
                "Catch": [catch_all("$.cleanup_error", OUTCOME)],
                "Next": OUTCOME}})
        else:
            self._add({CLEANUP: asl.pass_state(OUTCOME)})
        error, rolled = asl.present("$.error"), asl.present("$.rolled_back")
        failed_step = ("step ", asl.path("$.error.step"), " failed: ", asl.path("$.error.Cause"))
        self._add({
            OUTCOME: asl.choice([
                (asl.all_of(error, rolled, asl.present("$.rollback_errors")), "rollback_failed"),
                (asl.all_of(error, rolled), "rolled_back"),
                (error, "failed"),
                (asl.present("$.refused"), "stopped"),
                (asl.present("$.cleanup_error"), "cleanup_failed"),
            ], "succeeded"),
            "succeeded": {"Type": "Succeed"},
            "stopped": asl.fail(ERRORS["refused"], asl.path("$.refused.Cause")),
            "failed": asl.fail(ERRORS["failed"], asl.fmt(*failed_step)),
            "rolled_back": asl.fail(ERRORS["rolled_back"], asl.fmt(*failed_step,
                                                                   "; rolled back")),
            "rollback_failed": asl.fail(ERRORS["rollback_failed"], asl.fmt(
                *failed_step, "; rollback failed: ",
                asl.as_text(asl.path("$.rollback_errors")))),
            "cleanup_failed": asl.fail(ERRORS["cleanup_failed"], asl.fmt(
                "cleanup failed: ", asl.path("$.cleanup_error.Cause"))),
        })
