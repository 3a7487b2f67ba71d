"""The model of the fleet a forecast rehearses: what inspection found, and what it assumes."""

from __future__ import annotations

from typing import Any

import pytest

from remediate.actions.contract import Target
from remediate.forecast.child import forecast
from remediate.forecast.model import (
    FleetModel,
    ForecastFailed,
    ModelInstance,
    ModelWorkspace,
    fleet_model,
)


def facts(az: str, **extra: Any) -> dict[str, Any]:
    return {"availability_zone": az, "state": "running", "status": "impaired", **extra}


def test_instances_keep_their_region_az_pitfall_state_and_health() -> None:
    inspected = [
        (Target("ec2-instance", "i-1", "us-east-1"), facts("us-east-1c")),
        (Target("ec2-instance", "i-2", "us-east-1"), facts("us-east-1a", instance_store=True)),
        (Target("ec2-instance", "i-3", "eu-west-1", "prod"),
         facts("eu-west-1b", lifecycle="spot", spot_request_type="persistent",
               state="stopped", status="not-running")),
        (Target("ec2-instance", "i-4", "us-east-1"), facts("us-east-1c", status="ok",
                                                           stop_protection=True)),
        (Target("ec2-instance", "i-5", "us-east-1"),
         facts("us-east-1a", root_encrypted=True, kms_key_usable=False)),
    ]

    model = fleet_model(inspected, playbook="p.yaml", playbook_text=None, params={})

    assert model.instances == (
        ModelInstance("default", "us-east-1", 1, "plain", "running", False),
        ModelInstance("default", "us-east-1", 0, "instance_store", "running", False),
        ModelInstance("prod", "eu-west-1", 0, "spot_persistent", "stopped", False),
        ModelInstance("default", "us-east-1", 1, "stop_protected", "running", True),
        ModelInstance("default", "us-east-1", 0, "encrypted_bad_key", "running", False),
    )
    assert FleetModel.from_json(model.to_json()) == model


def test_workspaces_are_modelled_by_state() -> None:
    inspected = [(Target("workspace", f"ws-{n}", "us-east-1"), {"state": state})
                 for n, state in enumerate(("UNHEALTHY", "STOPPED", "AVAILABLE", "ERROR"))]

    model = fleet_model(inspected, playbook="p.yaml", playbook_text=None, params={})

    assert [w.condition for w in model.workspaces] == [
        "reboot", "stopped-reboot", "healthy", "reboot"]
    assert model.workspaces[0] == ModelWorkspace("default", "us-east-1", "reboot")


def test_a_rehearsal_that_cannot_run_says_why_in_one_line(tmp_path: Any) -> None:
    model = FleetModel(str(tmp_path / "gone.yaml"), None, {})

    with pytest.raises(ForecastFailed) as failed:
        forecast(model)

    assert str(failed.value) == f"ValueError: {tmp_path / 'gone.yaml'}: the playbook no " \
                                "longer loads"


def test_the_rehearsal_answers_itself_whatever_endpoint_the_caller_uses(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan against `sandbox serve` (AWS_ENDPOINT_URL) or a real account: the rehearsal's
    requests stay in its own process (nothing listens on port 9 here)."""
    from pathlib import Path

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_PROFILE", "production")
    playbook = Path(__file__).resolve().parents[2] / "playbooks" / "ec2-reboot-first.yaml"
    model = FleetModel(str(playbook), None, {}, instances=(
        ModelInstance("default", "us-east-1", 0, "plain", "running", True),
        ModelInstance("default", "us-east-1", 1, "plain", "running", False)))

    found = forecast(model)

    # The healthy one is skipped; the broken one gets max_reboots (3) reboots. The claim
    # tags come and go.
    assert found.targets == 2
    assert found.calls["ec2:RebootInstances"] == 3
    assert set(found.calls) == {"ec2:CreateTags", "ec2:DeleteTags", "ec2:RebootInstances"}
    assert found.seconds > 0


def test_the_rehearsal_launches_rescue_instances_with_the_runs_instance_profile() -> None:
    """A profile of the operator's account (an ARN) is made in the rehearsal's, so the
    rescue instances launch and reach SSM, and the forecast is the repair's, not a failed
    launch's."""
    from pathlib import Path

    playbook = Path(__file__).resolve().parents[2] / "playbooks" / "ec2-offline-repair.yaml"
    profile = "arn:aws:iam::111122223333:instance-profile/rescue-ssm"
    model = FleetModel(str(playbook), None, {"rescue_instance_profile": profile},
                       instances=(ModelInstance("default", "us-east-1", 0, "plain", "running",
                                                False),))

    found = forecast(model)

    assert (found.calls["ec2:RunInstances"], found.calls["ssm:SendCommand"],
            found.calls["ec2:StartInstances"]) == (1, 1, 1)
