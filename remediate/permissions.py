"""Least-privilege IAM policies, generated from the actions' declared contracts.

Each action grants its permissions as :meth:`Action.grants` says (its scoped
permissions; the others on ``*``). A policy keeps the grants no other grant of
it already allows, puts those on any resource in one statement per service (the
read-only calls, and the calls on the customer's own targets), gives each
scoped grant a statement of its own, and ends with a Deny of what remediate
promises never to do: an explicit Deny wins over any Allow, also over those of
other policies attached to the same role.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Final

from remediate.actions import registry
from remediate.actions.scoped import Scoped
from remediate.kinds import KINDS
from remediate.language.model import Playbook

VERSION: Final = "2012-10-17"
# What every run needs besides its steps: finding its targets.
DISCOVERY: dict[str, tuple[str, ...]] = {
    "ec2-instance": ("ec2:DescribeInstances",),
    "workspace": ("workspaces:DescribeWorkspaces", "workspaces:DescribeTags"),
}
# Never a customer volume, snapshot or WorkSpace deleted, whatever else the role may do.
NEVER: Final = ("ec2:DeleteSnapshot", "ec2:DeleteVolume", "workspaces:TerminateWorkspaces")


def playbook_actions(playbook: Playbook) -> list[str]:
    names = [KINDS[playbook.targets.kind].inspect_action]
    names += [step.action for step in (*playbook.steps, *playbook.rollback)]
    return list(dict.fromkeys(names))


def grants_for(action_names: Iterable[str], kind: str) -> list[Scoped]:
    """What discovering ``kind`` targets and running ``action_names`` needs."""
    grants = [Scoped(name) for name in DISCOVERY.get(kind, ())]
    for name in action_names:
        action = registry.get(name)
        if action is not None:
            grants.extend(action.grants())
    return grants


def playbook_grants(playbook: Playbook) -> list[Scoped]:
    return grants_for(playbook_actions(playbook), playbook.targets.kind)


def needed(grants: Iterable[Scoped]) -> list[Scoped]:
    """``grants`` less those another one already allows (and repeats), sorted."""
    unique = sorted(set(grants))
    return [grant for grant in unique
            if not any(other != grant and other.covers(grant) for other in unique)]


def allow_statements(grants: Iterable[Scoped]) -> list[dict[str, Any]]:
    """One statement per service for the grants on any resource, then one per scoped grant."""
    kept = needed(grants)
    by_service: dict[str, list[str]] = {}
    for grant in kept:
        if grant.broad:
            by_service.setdefault(_service(grant), []).append(grant.action)
    statements: list[dict[str, Any]] = [
        {"Sid": f"Remediate{_title(service)}", "Effect": "Allow", "Action": actions,
         "Resource": "*"}
        for service, actions in sorted(by_service.items())]
    scoped = [grant for grant in kept if not grant.broad]
    for grant, sid in zip(scoped, _sids(scoped), strict=True):
        statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": [grant.action],
                                     "Resource": list(grant.resources)}
        if grant.conditions:
            statement["Condition"] = grant.condition_block()
        statements.append(statement)
    return statements


def deny_statement() -> dict[str, Any]:
    """The promise, enforced by IAM: remediate never deletes these."""
    return {"Sid": "RemediateNeverDeletes", "Effect": "Deny", "Action": list(NEVER),
            "Resource": "*"}


def policy_document(playbook: Playbook) -> dict[str, Any]:
    statements = allow_statements(playbook_grants(playbook))
    roles = sorted(a.role_arn for a in playbook.targets.accounts if a.role_arn)
    if roles:
        statements.append({"Sid": "RemediateAssumeRoles", "Effect": "Allow",
                           "Action": ["sts:AssumeRole"], "Resource": roles})
    statements.append(deny_statement())
    return {"Version": VERSION, "Statement": statements}


def _service(grant: Scoped) -> str:
    return grant.action.split(":", 1)[0]


def _title(service: str) -> str:
    return service.title().replace("-", "")


def _sids(grants: Sequence[Scoped]) -> list[str]:
    """``RemediateEc2TerminateInstances``; an action granted several ways also names the
    resource types of each (``...RunInstancesInstanceVolume``), then a number if need be."""
    bases = [f"Remediate{_title(_service(g))}{g.action.split(':', 1)[1]}" for g in grants]
    repeated = Counter(bases)
    named = [base + (_kinds(grant) if repeated[base] > 1 else "")
             for grant, base in zip(grants, bases, strict=True)]
    alike = Counter(named)
    seen: Counter[str] = Counter()
    sids = []
    for sid in named:
        seen[sid] += 1
        sids.append(sid if alike[sid] == 1 else f"{sid}{seen[sid]}")
    return sids


def _kinds(grant: Scoped) -> str:
    """The resource types of the grant's ARNs, CamelCased: ``NetworkInterfaceSubnet``."""
    kinds = sorted({arn.split(":", 5)[5].split("/", 1)[0] for arn in grant.resources
                    if arn != "*"})
    return "".join(part.title() for kind in kinds for part in re.split(r"[-_]", kind))
