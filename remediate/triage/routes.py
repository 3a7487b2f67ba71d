"""The repairs a broken target could take, and what blocks each: the findings `plan`
makes, judged per route.

A route is a built-in playbook, named with the actions it runs; the route is blocked
by a ``block`` finding among those actions' risks (a one-time Spot instance cannot be
stopped: no offline repair), needs the operator's ``--accept`` for an ``ack`` one or
for the data-destroying action it uses (a root-volume replacement), and is open
otherwise. Findings come from :func:`remediate.preflight.findings_for`, the rules
`plan` applies, on the facts triage read. Triage does not read the rescue image (no
playbook names one here) nor the root volume's KMS key: `plan` with the chosen playbook
judges those.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from remediate import preflight
from remediate.actions import registry
from remediate.findings import FINDINGS


@dataclass(frozen=True)
class Route:
    name: str
    playbook: str
    actions: tuple[str, ...]
    for_incident_only: bool = False
    """It deletes the channel file: no use for a guest that crashes on something else."""
    from_states: frozenset[str] = frozenset()
    """WorkSpaces: the states it starts from (empty: any)."""


EC2_ROUTES: Final = (
    Route("reboot", "playbooks/ec2-reboot-first.yaml", ("ec2.reboot", "ec2.verify_status")),
    Route("offline-repair", "playbooks/ec2-offline-repair.yaml", (
        "rescue.prepare", "ec2.snapshot_root", "ec2.stop", "ec2.detach_root",
        "rescue.attach_volume", "rescue.repair", "rescue.detach_volume", "ec2.reattach_root",
        "ec2.restore_root_settings", "ec2.verify_status", "ec2.confirm_backup"),
        for_incident_only=True),
    Route("replace-root", "playbooks/ec2-replace-root-volume.yaml",
          ("ec2.snapshot_root", "ec2.replace_root", "ec2.verify_status")),
)
# The WorkSpaces states each starts from: its API reference (remediate.sandbox.workspaces).
WORKSPACE_ROUTES: Final = (
    Route("reboot", "playbooks/workspaces-recover.yaml", ("workspaces.reboot",),
          from_states=frozenset({"AVAILABLE", "UNHEALTHY"})),
    Route("restore", "playbooks/workspaces-recover.yaml", ("workspaces.restore",),
          from_states=frozenset({"AVAILABLE", "ERROR", "UNHEALTHY", "STOPPED"})),
    Route("rebuild", "playbooks/workspaces-recover.yaml", ("workspaces.rebuild",),
          from_states=frozenset({"AVAILABLE", "ERROR", "UNHEALTHY", "STOPPED", "REBOOTING"})),
)


@dataclass(frozen=True)
class RouteVerdict:
    route: str
    playbook: str
    verdict: str
    """``open``, ``needs --accept`` or ``blocked`` (``not applicable``: not for it)."""
    reasons: tuple[str, ...] = ()

    def text(self) -> str:
        return self.verdict + (f" ({'; '.join(self.reasons)})" if self.reasons else "")


def _risks(route: Route) -> tuple[frozenset[str], tuple[str, ...]]:
    """The finding kinds the route's actions risk, and the data-destroying ones it uses."""
    risks: set[str] = set()
    destructive: list[str] = []
    for name in route.actions:
        action = registry.get(name)
        if action is None:
            raise LookupError(f"route {route.name}: no action {name}")
        risks |= action.risks
        if action.destructive and action.destructive not in destructive:
            destructive.append(action.destructive)
    return frozenset(risks), tuple(destructive)


def judge(route: Route, kind: str, facts: Mapping[str, Any]) -> RouteVerdict:
    risks, destructive = _risks(route)
    found = [f for f in preflight.findings_for(kind, facts) if f.kind in risks]
    blocked = [f"{f.kind}: {FINDINGS[f.kind].hint}" if FINDINGS[f.kind].hint else f.kind
               for f in found if f.severity == "block"]
    if blocked:
        return RouteVerdict(route.name, route.playbook, "blocked", tuple(blocked))
    acks = [f.kind for f in found if f.severity == "ack"] + list(destructive)
    if acks:
        return RouteVerdict(route.name, route.playbook, "needs --accept",
                            tuple(dict.fromkeys(acks)))
    return RouteVerdict(route.name, route.playbook, "open")


def routes_for(kind: str, triage_class: str, facts: Mapping[str, Any]) -> list[RouteVerdict]:
    """Every route of ``kind`` and its verdict for a target of ``triage_class``."""
    if kind == "workspace":
        state = str(facts.get("state"))
        return [judge(r, kind, facts) if state in r.from_states
                else RouteVerdict(r.name, r.playbook, "not applicable",
                                  (f"not from state {state}",))
                for r in WORKSPACE_ROUTES]
    return [RouteVerdict(r.name, r.playbook, "not applicable",
                         ("it deletes the channel file; this guest crashes on something "
                          "else",))
            if r.for_incident_only and triage_class != "incident-boot-loop"
            else judge(r, kind, facts) for r in EC2_ROUTES]
