"""What the Step Functions compiler of an action gets (:class:`AslStep`) and returns
(:class:`Fragment`).

A fragment is the body of one step: states that read the iteration's state
(``$.target`` facts, ``$.steps.<id>.outputs``, ``$.run.id``), keep scratch values
under ``$.r``, and end in a Pass state whose output is the step's outputs. The
compiler runs it as the single branch of a Parallel state, so the step's retries
and ``on_failure`` apply to the whole fragment and its scratch values never leak.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from remediate.actions import requests
from remediate.export import asl
from remediate.export.asl import Ref, State, States
from remediate.export.errors import NotExportable

STEP_FAILED: Final = requests.STEP_FAILED
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

    def polls(self, timeout: float) -> int:
        return max(1, math.ceil(timeout / self.poll_seconds))

    def done(self, outputs: Mapping[str, Any]) -> State:
        """The fragment's last state: its output is the step's outputs."""
        return asl.pass_state(None, parameters=outputs)

    def failure(self, message: str | Ref, kind: str = STEP_FAILED) -> State:
        """A Fail state: the step failed, its Error the failure's kind (a
        :class:`~remediate.actions.program.Fail`'s)."""
        return asl.fail(kind, message)

    def unsupported(self, reason: str) -> NotExportable:
        return NotExportable(self.action, reason)
