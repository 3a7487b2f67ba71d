"""Actions written as programs (:mod:`remediate.actions.program`): declared once, run by
the local engine and compiled for Step Functions from the same definition."""

from __future__ import annotations

import json
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final

from remediate.actions import interpret
from remediate.actions.contract import Action, StepContext
from remediate.actions.program import Program
from remediate.actions.requests import ActionRun

PROGRAMS_KEPT: Final = 64


class ProgramAction(Action):
    """An action whose behaviour is its :meth:`program`.

    ``params`` are the step's checked parameters: locally every value is known; at
    export a value only known at run time (a template reading a fact or an earlier
    step's output) is a JSONPath reference, so a program reads parameters it sends to
    AWS as ``Var("params.<name>")`` and uses a Python value only to choose its shape
    (which the compiler then needs bound: :func:`bound`).
    """

    @abstractmethod
    def program(self, params: Mapping[str, Any]) -> Program:
        """The program for a step with these parameters."""

    def cleanup(self, params: Mapping[str, Any]) -> Program | None:
        """What each Step Functions iteration that ran a step of this action with these
        ``params`` (bound at export: a value known only at run time is a
        :class:`~remediate.export.asl.Ref`) runs at its end, whatever happened (the
        per-target counterpart of a run-wide service's ``finish``); None: nothing. The
        program reads no parameters: it is compiled once per playbook, for the first of
        the action's steps that needs one."""
        return None

    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        return (yield from interpret.run(self.program_for(params), ctx, params))

    def program_for(self, params: Mapping[str, Any]) -> Program:
        """:meth:`program`, built once for each set of parameters recently seen: every
        target of a step usually has the same (a program is immutable data)."""
        key = json.dumps(params, sort_keys=True, default=str)
        programs = self.__dict__.setdefault("_programs", OrderedDict())
        if key in programs:
            programs.move_to_end(key)
            built: Program = programs[key]
            return built
        built = programs[key] = self.program(params)
        if len(programs) > PROGRAMS_KEPT:
            programs.popitem(last=False)
        return built
