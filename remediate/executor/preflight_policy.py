"""How a playbook judges one target's facts: which findings matter, and which refuse it.

:mod:`remediate.preflight` holds the rules (facts -> findings -> refusal); this
module works out their inputs from the playbook once per run: the risks its
actions declare, the data-destroying actions it uses, the rescue AMI it names,
and what the operator accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from remediate import preflight
from remediate.actions import registry
from remediate.actions.contract import Action
from remediate.findings import FINDINGS, Finding
from remediate.language.model import Playbook
from remediate.language.template import TemplateError, render

# The step parameter naming the rescue AMI (rescue.attach_volume).
RESCUE_IMAGE_PARAM = "rescue_image_id"


@dataclass(frozen=True)
class PreflightPolicy:
    """Data-destroying actions are judged where they are sure to run: one in an
    unconditional step (or a rollback step) refuses an unaccepted target before
    anything runs; one in a step with a ``when`` (WorkSpaces' restore, only if the
    reboot did not help) stops the target at that step, if it is reached
    (:meth:`step_refusal`), so what comes before it still runs."""

    relevant: frozenset[str]
    destructive: tuple[str, ...]
    accepted: frozenset[str]
    require_ack: frozenset[str]
    rescue_image_id: str | None = None
    at_step: frozenset[str] = frozenset()  # destructive kinds judged at their step

    @classmethod
    def for_playbook(cls, playbook: Playbook, params: Mapping[str, Any],
                     accepted: frozenset[str]) -> PreflightPolicy:
        relevant: set[str] = set(playbook.guards.require_ack)
        destructive: list[str] = []
        sure: set[str] = set()
        rescue_image: str | None = None
        conditional = {id(step) for step in playbook.steps if step.when is not None}
        for step in (*playbook.steps, *playbook.rollback):
            action = registry.get(step.action)
            if action is None:
                continue
            relevant |= action.risks
            if action.destructive and action.destructive not in destructive:
                destructive.append(action.destructive)
            if action.destructive and id(step) not in conditional:
                sure.add(action.destructive)
            if RESCUE_IMAGE_PARAM in step.params and rescue_image is None:
                try:
                    value = render(step.params[RESCUE_IMAGE_PARAM], {"params": dict(params)})
                except TemplateError:
                    value = None
                rescue_image = value if isinstance(value, str) else None
        at_step = frozenset(destructive) - sure - set(playbook.guards.require_ack)
        relevant = (relevant | set(destructive)) - at_step
        return cls(frozenset(relevant), tuple(destructive), accepted,
                   frozenset(playbook.guards.require_ack), rescue_image, at_step)

    def step_refusal(self, action: Action) -> str | None:
        """Why a target must stop before a step running ``action`` (None: it may run)."""
        kind = action.destructive
        if kind is None or kind not in self.at_step or kind in self.accepted:
            return None
        return f"{kind} not accepted (--accept {kind}): {FINDINGS[kind].summary}"

    def judge(self, kind: str, facts: Mapping[str, Any]) -> tuple[tuple[Finding, ...],
                                                                   str | None]:
        """The target's findings that matter to the playbook (a risk of one of its actions,
        or what the target is), and why it is refused (None: it may go on)."""
        found = preflight.findings_for(kind, facts, self.rescue_image_id)
        found += preflight.destructive_findings(self.destructive, facts)
        shown = self.relevant | self.at_step
        findings = [f for f in found if f.kind in shown or FINDINGS[f.kind].about_target]
        refusal = preflight.gate(findings, set(self.relevant), set(self.accepted),
                                 set(self.require_ack))
        return tuple(findings), refusal
