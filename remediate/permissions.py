"""Least-privilege IAM policies, generated from the actions' declared contracts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from remediate.actions import registry
from remediate.kinds import KINDS
from remediate.language.model import Playbook

# What every run needs besides its steps: finding its targets.
DISCOVERY: dict[str, tuple[str, ...]] = {
    "ec2-instance": ("ec2:DescribeInstances",),
    "workspace": ("workspaces:DescribeWorkspaces", "workspaces:DescribeTags"),
}


def playbook_actions(playbook: Playbook) -> list[str]:
    names = [KINDS[playbook.targets.kind].inspect_action]
    names += [step.action for step in (*playbook.steps, *playbook.rollback)]
    return list(dict.fromkeys(names))


def permissions_for(action_names: Iterable[str], kind: str) -> list[str]:
    perms: set[str] = set(DISCOVERY.get(kind, ()))
    for name in action_names:
        action = registry.get(name)
        if action is not None:
            perms.update(action.permissions)
    return sorted(perms)


def policy_document(playbook: Playbook) -> dict[str, Any]:
    perms = permissions_for(playbook_actions(playbook), playbook.targets.kind)
    by_service: dict[str, list[str]] = {}
    for perm in perms:
        by_service.setdefault(perm.split(":", 1)[0], []).append(perm)
    statements: list[dict[str, Any]] = [
        {"Sid": f"Remediate{service.title().replace('-', '')}", "Effect": "Allow",
         "Action": actions, "Resource": "*"}
        for service, actions in sorted(by_service.items())
    ]
    if playbook.targets.accounts and any(a.role_arn for a in playbook.targets.accounts):
        statements.append({"Sid": "RemediateAssumeRoles", "Effect": "Allow",
                           "Action": ["sts:AssumeRole"],
                           "Resource": sorted(a.role_arn for a in playbook.targets.accounts
                                              if a.role_arn)})
    return {"Version": "2012-10-17", "Statement": statements}
