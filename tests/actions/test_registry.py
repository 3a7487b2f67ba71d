"""Rules every registered action follows: checked over the whole registry."""

from __future__ import annotations

from functools import cache

import botocore.session
import pytest

from remediate.actions import registry
from remediate.actions.contract import Action
from remediate.actions.scoped import OPERATORS, is_known_key
from remediate.aws.apis import OPERATIONS
from remediate.findings import FINDINGS
from remediate.kinds import KINDS
from remediate.language.schema import Record
from remediate.permissions import NEVER, is_read_only

ACTIONS = list(registry.actions())
IAM_ACTIONS = {op.iam_action for op in OPERATIONS.values()}
SCOPED = [action for action in ACTIONS if action.scoped_permissions]
# IAM actions that authorize something without being an API operation of their own.
PERMISSION_ONLY = frozenset({"iam:PassRole"})


@cache
def _operations(service: str) -> frozenset[str]:
    """The API operations of ``service``, from botocore's service model."""
    model = botocore.session.get_session().get_service_model(service)
    return frozenset(model.operation_names)


def is_iam_action(name: str) -> bool:
    service, _, operation = name.partition(":")
    return name in PERMISSION_ONLY or operation in _operations(service)


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


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
def test_every_permission_is_a_real_iam_action(action: Action) -> None:
    assert [p for p in action.permissions if not is_iam_action(p)] == []


def test_every_mutating_action_is_scoped() -> None:
    # And ec2.inspect, whose one scoped read is the DHMC setting (ssm:GetServiceSetting).
    assert [a.name for a in SCOPED if a.mutating] == [
        a.name for a in ACTIONS if a.mutating and not a.name.startswith("control.")] == [
        "ec2.detach_root", "ec2.reattach_root", "ec2.reboot", "ec2.replace_root",
        "ec2.restore_root_settings", "ec2.snapshot_root", "ec2.start", "ec2.stop",
        "rescue.attach_volume", "rescue.detach_volume", "rescue.prepare", "rescue.repair",
        "ssm.run_command", "ssm.verify_guest", "workspaces.reboot", "workspaces.rebuild",
        "workspaces.restore", "workspaces.start"]


@pytest.mark.parametrize("action", SCOPED, ids=lambda a: a.name)
def test_scoped_permissions_narrow_what_the_action_lists(action: Action) -> None:
    for scoped in action.scoped_permissions:
        assert scoped.action in action.permissions, scoped.action
        assert is_iam_action(scoped.action), scoped.action
        assert not scoped.broad, f"{scoped.action} on * unconditionally is not a scope"
        for condition in scoped.conditions:
            assert condition.operator in OPERATORS and is_known_key(condition.key), condition
    assert len(set(action.scoped_permissions)) == len(action.scoped_permissions)


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
def test_grants_are_the_scoped_permissions_and_the_rest_on_any_resource(
        action: Action) -> None:
    scoped = {s.action for s in action.scoped_permissions}
    grants = action.grants()
    assert [g for g in grants if not g.broad] == list(action.scoped_permissions)
    assert [g.action for g in grants if g.broad] == [
        p for p in action.permissions if p not in scoped]


def test_no_action_and_no_operation_needs_what_the_policy_denies() -> None:
    assert [(a.name, p) for a in ACTIONS for p in a.permissions if p in NEVER] == []
    assert sorted(IAM_ACTIONS & set(NEVER)) == []
    assert all(is_iam_action(name) for name in NEVER)


def test_only_reads_are_granted_on_any_resource() -> None:
    broad = sorted({g.action for a in ACTIONS for g in a.grants() if g.broad})
    assert broad and [name for name in broad if not is_read_only(name)] == []


def test_the_calls_on_the_targets_are_granted_on_the_targets_only() -> None:
    on_targets = sorted({g.action for a in ACTIONS for g in a.grants() if g.on_targets})
    assert on_targets == [
        "ec2:AttachVolume", "ec2:CreateReplaceRootVolumeTask", "ec2:DetachVolume",
        "ec2:ModifyInstanceAttribute", "ec2:RebootInstances", "ec2:StartInstances",
        "ec2:StopInstances", "ssm:SendCommand", "workspaces:RebootWorkspaces",
        "workspaces:RebuildWorkspaces", "workspaces:RestoreWorkspace",
        "workspaces:StartWorkspaces"]
