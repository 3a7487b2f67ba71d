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
from remediate.aws.principal import Attacher
from remediate.findings import FINDINGS, Finding
from remediate.language.model import Playbook
from remediate.language.template import TemplateError, render

# The step parameters naming the rescue AMI and instance profile (rescue.attach_volume).
RESCUE_IMAGE_PARAM = "rescue_image_id"
RESCUE_PROFILE_PARAM = "instance_profile"


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
    rescue_instance_profile: str | None = None  # of the step naming the rescue AMI
    # The identity that will call AttachVolume, whose KMS key access inspection judges
    # (None: the operator; on Step Functions the machine's role).
    attacher: Attacher | None = None

    @classmethod
    def for_playbook(cls, playbook: Playbook, params: Mapping[str, Any],
                     accepted: frozenset[str],
                     attacher: Attacher | None = None) -> PreflightPolicy:
        relevant: set[str] = set(playbook.guards.require_ack)
        destructive: list[str] = []
        sure: set[str] = set()
        rescue_image: str | None = None
        rescue_profile: str | None = None
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
                rescue_image = _rendered(step.params[RESCUE_IMAGE_PARAM], params)
                rescue_profile = _rendered(step.params.get(RESCUE_PROFILE_PARAM), params) or None
        at_step = frozenset(destructive) - sure - set(playbook.guards.require_ack)
        relevant = (relevant | set(destructive)) - at_step
        return cls(frozenset(relevant), tuple(destructive), accepted,
                   frozenset(playbook.guards.require_ack), rescue_image, at_step,
                   rescue_profile, attacher)

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


def _rendered(value: Any, params: Mapping[str, Any]) -> str | None:
    """A step parameter with the playbook's ``params`` put in (None: not a string)."""
    try:
        value = render(value, {"params": dict(params)})
    except TemplateError:
        return None
    return value if isinstance(value, str) else None
