"""ProgramAction builds a step's program once per set of parameters (every target of a
step usually has the same), keeping the most recent few."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from remediate.actions.contract import Plan, StepContext
from remediate.actions.program import Done, Program, program
from remediate.actions.programmed import PROGRAMS_KEPT, ProgramAction


class Counting(ProgramAction):
    name = "test.counting"
    summary = "a program that says how often it was built"

    def __init__(self) -> None:
        self.built = 0

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        return Plan()

    def program(self, params: Mapping[str, Any]) -> Program:
        self.built += 1
        return program(Done({"times": params.get("times")}))


def test_a_program_is_built_once_per_set_of_parameters() -> None:
    action = Counting()

    first = action.program_for({"times": 3, "verify": True})
    again = action.program_for({"verify": True, "times": 3})
    other = action.program_for({"times": 4, "verify": True})

    assert first is again and other is not first
    assert action.built == 2


def test_only_the_most_recent_sets_are_kept() -> None:
    action = Counting()
    for times in range(PROGRAMS_KEPT + 1):
        action.program_for({"times": times})

    action.program_for({"times": PROGRAMS_KEPT})  # kept
    assert action.built == PROGRAMS_KEPT + 1
    action.program_for({"times": 0})  # the oldest, dropped: built again
    assert action.built == PROGRAMS_KEPT + 2
