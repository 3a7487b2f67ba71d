"""The playbook language as JSON Schema, generated from the spec and the action registry.

Editors use it through yaml-language-server (``# yaml-language-server:
$schema=...``); the validator does not need it (it checks with the same nodes,
with better errors), so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from remediate import __version__
from remediate.actions import registry
from remediate.language.spec import PLAYBOOK, ConditionNode

SCHEMA_ID = "https://remediate.dev/schema/playbook-v1.json"


def playbook_schema() -> dict[str, Any]:
    schema = PLAYBOOK.json_schema()
    step_rules = []
    for action in registry.actions():
        step_rules.append({
            "if": {"properties": {"action": {"const": action.name}}, "required": ["action"]},
            "then": {"properties": {"with": action.params.json_schema()}},
        })
    action_names = {"enum": registry.names()}
    for section in ("steps", "rollback"):
        step = schema["properties"][section]["items"]
        step["properties"]["action"] = {**step["properties"]["action"], **action_names}
        step["allOf"] = step_rules
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": f"remediate playbook (language v1, remediate {__version__})",
        **schema,
        "$defs": {"condition": ConditionNode().json_schema()},
    }
