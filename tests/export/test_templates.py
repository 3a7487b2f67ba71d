"""Step params: ``params.*`` bound at export and checked by the schema, the rest Refs."""

from __future__ import annotations

import pytest

from remediate.actions import registry
from remediate.export import asl
from remediate.export.errors import NotExportable
from remediate.export.templates import bind

FACTS = ("id", "root_volume_id")


def test_params_are_bound_and_checked_and_other_references_read_the_state() -> None:
    action = registry.get("rescue.repair")
    assert action is not None
    bound = bind(action, "repair", {
        "rescue_instance_id": "${{ steps.attach.outputs.rescue_instance_id }}",
        "timeout": "${{ params.script_timeout }}",
        "volume_id": "${{ target.root_volume_id }}",
    }, {"script_timeout": "20m"}, FACTS)

    assert bound["rescue_instance_id"] == asl.path("$.steps.attach.outputs.rescue_instance_id")
    assert bound["volume_id"] == asl.path("$.target.root_volume_id")
    assert bound["timeout"] == 1200.0  # "20m", checked by the action's schema
    assert bound["script"] == "scripts/crowdstrike-offline-repair.ps1"  # its default


def test_text_around_references_becomes_a_format() -> None:
    action = registry.get("control.fail")
    assert action is not None
    bound = bind(action, "give_up", {
        "message": "${{ target.id }} failed in run ${{ run.id }} (${{ params.why }})"},
        {"why": "too many reboots"}, FACTS)

    assert bound["message"] == asl.Ref(
        "States.Format('{} failed in run {} (too many reboots)', $.target.id, $.run.id)")


def test_a_param_the_schema_refuses_does_not_export() -> None:
    action = registry.get("ec2.reboot")
    assert action is not None
    with pytest.raises(NotExportable) as raised:
        bind(action, "reboot", {"times": "${{ params.n }}"}, {"n": 99}, FACTS)
    assert str(raised.value) == (
        "step reboot (ec2.reboot) cannot be exported to Step Functions: with.times: "
        "expected an integer from 1 to 10, found 99 (an integer)")
