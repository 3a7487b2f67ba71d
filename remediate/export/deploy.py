"""Creating or updating a playbook's state machine (CreateStateMachine / UpdateStateMachine)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Deployed:
    arn: str
    # "created", "updated" (definition or role changed) or "unchanged".
    change: Literal["created", "updated", "unchanged"]


def find_state_machine(sfn: Any, name: str) -> str | None:
    """The ARN of the state machine called ``name`` in the client's account and Region."""
    for page in sfn.get_paginator("list_state_machines").paginate():
        for machine in page["stateMachines"]:
            if machine["name"] == name:
                return str(machine["stateMachineArn"])
    return None


def text(definition: Mapping[str, Any]) -> str:
    """The definition as stored (compact JSON), to compare with a deployed one."""
    return json.dumps(definition, separators=(",", ":"), sort_keys=True)


def is_current(sfn: Any, arn: str, definition: Mapping[str, Any],
               role_arn: str | None = None) -> bool:
    """Whether the deployed machine has this definition (and role, if given)."""
    found = sfn.describe_state_machine(stateMachineArn=arn)
    same = text(json.loads(found["definition"])) == text(definition)
    return same and (role_arn is None or found["roleArn"] == role_arn)


def deploy(sfn: Any, name: str, definition: Mapping[str, Any], role_arn: str,
           comment: str = "") -> Deployed:
    arn = find_state_machine(sfn, name)
    if arn is None:
        created = sfn.create_state_machine(
            name=name, definition=text(definition), roleArn=role_arn, type="STANDARD",
            tags=[{"key": "remediate:purpose", "value": comment or "remediate playbook"}])
        return Deployed(str(created["stateMachineArn"]), "created")
    if is_current(sfn, arn, definition, role_arn):
        return Deployed(arn, "unchanged")
    sfn.update_state_machine(stateMachineArn=arn, definition=text(definition), roleArn=role_arn)
    return Deployed(arn, "updated")
