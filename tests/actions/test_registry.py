"""Rules every registered action follows: checked over the whole registry."""

from __future__ import annotations

import pytest

from remediate.actions import registry
from remediate.actions.contract import Action
from remediate.aws.apis import OPERATIONS
from remediate.findings import FINDINGS
from remediate.kinds import KINDS
from remediate.language.schema import Record

ACTIONS = list(registry.actions())
IAM_ACTIONS = {op.iam_action for op in OPERATIONS.values()}


def test_registry_holds_every_route() -> None:
    assert {"ec2.inspect", "ec2.snapshot_root", "ec2.stop", "ec2.start", "ec2.reboot",
            "ec2.detach_root", "ec2.reattach_root", "ec2.restore_root_settings",
            "ec2.replace_root", "ec2.verify_status", "rescue.attach_volume", "rescue.repair",
            "rescue.detach_volume", "ssm.run_command", "workspaces.inspect",
            "workspaces.start", "workspaces.reboot", "workspaces.restore",
            "workspaces.rebuild", "workspaces.wait_state"} <= set(registry.names())


def test_every_kind_has_its_inspect_action() -> None:
    for kind in KINDS.values():
        action = registry.get(kind.inspect_action)
        assert action is not None and kind.name in action.kinds
        assert set(kind.facts) <= set(action.outputs)


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
def test_contract(action: Action) -> None:
    assert action.name.count(".") == 1 and action.summary
    assert isinstance(action.params, Record)
    assert action.params.json_schema()["additionalProperties"] is False
    for name, field in action.params.fields.items():
        assert field.description or field.node.description, f"{action.name}.with.{name}"
    assert action.kinds and action.kinds <= set(KINDS)
    assert action.risks <= set(FINDINGS)
    assert action.destructive is None or action.destructive in FINDINGS
    assert action.undo is None or registry.get(action.undo) is not None
    if not action.name.startswith("control."):
        assert action.permissions, "an action that calls AWS must declare its permissions"
    for permission in action.permissions:
        assert ":" in permission
    if action.mutating:
        assert action.verify or action.name.startswith(("control.", "ssm.")), action.name
