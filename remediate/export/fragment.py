"""What an action's ``asl()`` gets and returns, and the polling loop most fragments use.

A fragment is the body of one step: states that read the iteration's state
(``$.target`` facts, ``$.steps.<id>.outputs``, ``$.run.id``), keep scratch values
under ``$.r``, and end in a Pass state whose output is the step's outputs. The
compiler runs it as the single branch of a Parallel state, so the step's retries
and ``on_failure`` apply to the whole fragment and its scratch values never leak.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from remediate.export import asl
from remediate.export.asl import Ref, Rule, State, States
from remediate.export.errors import NotExportable
from remediate.language.durations import format_duration

STEP_FAILED: Final = "remediate.StepFailed"
WAIT_TIMEOUT: Final = "remediate.WaitTimeout"


@dataclass(frozen=True)
class Fragment:
    start: str
    states: States


@dataclass(frozen=True)
class AslStep:
    """One step being exported: its id, its checked params (literals, or :class:`Ref`
    for values only known at run time) and the playbook settings fragments need."""

    step_id: str
    action: str
    params: Mapping[str, Any] = field(default_factory=dict)
    poll_seconds: int = 15
    base_dir: str = "."
    accepted: frozenset[str] = frozenset()

    def name(self, *parts: str) -> str:
        """A state name unique in the state machine: ``<step>.<part>...``."""
        return ".".join((self.step_id, *parts))

    def fact(self, name: str) -> Ref:
        return asl.path(f"$.target.{name}")

    @property
    def target_id(self) -> Ref:
        return self.fact("id")

    @property
    def run_id(self) -> Ref:
        return asl.path("$.run.id")

    def scratch(self, key: str) -> str:
        """Where the fragment keeps a value (``$.r.<key>``)."""
        return f"$.r.{key}"

    def at(self, key: str, *fields: str) -> str:
        return ".".join((self.scratch(key), *fields))

    def value(self, param: str, fact: str) -> Any:
        """The param if set, else the fact (the local action's defaulting)."""
        given = self.params.get(param)
        return self.fact(fact) if given in (None, "") else given

    def polls(self, timeout: float) -> int:
        return max(1, math.ceil(timeout / self.poll_seconds))

    def done(self, outputs: Mapping[str, Any]) -> State:
        """The fragment's last state: its output is the step's outputs."""
        return asl.pass_state(None, parameters=outputs)

    def failure(self, message: str | Ref) -> State:
        return asl.fail(STEP_FAILED, message)

    def unsupported(self, reason: str) -> NotExportable:
        return NotExportable(self.action, reason)


def read(step: AslStep, name: str, service: str, operation: str, params: Mapping[str, Any],
         select: Mapping[str, Any], next_state: str) -> State:
    """A read whose selected values land at ``$.r.<name>``."""
    return asl.task(service, operation, params, next_state, select=select,
                    result_path=step.scratch(name))


@dataclass(frozen=True)
class Poll:
    """Read until ``until`` holds (``Wait`` between reads), on the executor's terms:
    the first read is immediate; ``failed`` rules end the step with their message."""

    name: str
    service: str
    operation: str
    params: Mapping[str, Any]
    select: Mapping[str, Any]
    until: Rule
    timeout: float
    what: str
    failed: Sequence[tuple[Rule, str | Ref]] = ()


def poll(step: AslStep, spec: Poll, done: str, on_timeout: str | None = None,
         exits: Sequence[tuple[Rule, str]] = ()) -> Fragment:
    """The loop's states; it starts at ``<step>.<name>`` and goes on to ``done``.

    The counter at ``$.poll`` bounds it to ``timeout`` (polls times the interval);
    past that it goes to ``on_timeout``, or fails naming what was last seen.
    ``exits`` leave the loop early, to another state (checked after ``until``).
    """
    start = step.name(spec.name)
    get, check = step.name(spec.name, "get"), step.name(spec.name, "check")
    nap, count = step.name(spec.name, "sleep"), step.name(spec.name, "count")
    states: States = {
        start: asl.pass_state(get, result={"n": 0}, result_path="$.poll"),
        get: read(step, spec.name, spec.service, spec.operation, spec.params, spec.select, check),
    }
    branches: list[tuple[Rule, str]] = [(spec.until, done), *exits]
    for index, (rule, message) in enumerate(spec.failed):
        failed = step.name(spec.name, f"failed{index + 1}")
        states[failed] = step.failure(message)
        branches.append((rule, failed))
    if on_timeout is None:
        on_timeout = step.name(spec.name, "timed-out")
        states[on_timeout] = asl.fail(WAIT_TIMEOUT, asl.fmt(
            f"{spec.what} not reached after {format_duration(spec.timeout)}; last seen: ",
            asl.as_text(asl.path(step.scratch(spec.name)))))
    branches.append((asl.at_least("$.poll.n", step.polls(spec.timeout)), on_timeout))
    states[check] = asl.choice(branches, nap)
    states[nap] = asl.wait(step.poll_seconds, count)
    states[count] = asl.pass_state(get, parameters={"n": asl.add(asl.path("$.poll.n"), 1)},
                                   result_path="$.poll")
    return Fragment(start, states)


def count_select(list_key: str) -> dict[str, Ref]:
    """Select how many entries a Describe call returned (``$.r.<name>.n``)."""
    return {"n": Ref(f"States.ArrayLength($.{list_key})")}


def merge(*fragments: Fragment | States) -> States:
    """One state dict from several fragments; a state name used twice is a bug."""
    out: States = {}
    for part in fragments:
        states = part.states if isinstance(part, Fragment) else part
        clash = set(out) & set(states)
        if clash:
            raise ValueError(f"state names defined twice: {', '.join(sorted(clash))}")
        out.update(states)
    return out
