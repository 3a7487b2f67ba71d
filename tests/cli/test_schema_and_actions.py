from __future__ import annotations

import json
from pathlib import Path

import pytest

from remediate.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def test_schema_is_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["version", "name", "targets", "steps"]


def test_list_actions_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list-actions", "--format", "json"]) == 0
    actions = {a["name"]: a for a in json.loads(capsys.readouterr().out)}
    stop = actions["ec2.stop"]
    assert stop["mutating"] is True
    assert "ec2:StopInstances" in stop["permissions"]
    assert "instance-store-data-loss" in stop["risks"]
    assert actions["ec2.inspect"]["mutating"] is False


def test_list_facts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list-actions", "--facts"]) == 0
    out = capsys.readouterr().out
    assert "  target.root_volume_id: the EBS volume attached at the root device" in out


def test_iam_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["iam-policy", str(ROOT / "playbooks/ec2-offline-repair.yaml")]) == 0
    policy = json.loads(capsys.readouterr().out)
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert {"ec2:DescribeInstances", "ec2:CreateSnapshot", "ec2:StopInstances",
            "ec2:DetachVolume", "ec2:AttachVolume", "ec2:RunInstances",
            "ec2:TerminateInstances", "ssm:SendCommand",
            "ec2:ModifyInstanceAttribute", "ec2:StartInstances"} <= actions
    assert not any(a.startswith("workspaces:") for a in actions)


def test_iam_policy_of_invalid_playbook(capsys: pytest.CaptureFixture[str]) -> None:
    bad = ROOT / "tests/language/corpus/invalid/12-unknown-action.yaml"
    assert main(["iam-policy", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "unknown action 'ec2.stopp'" in err
    assert err.strip().endswith(f"error: {bad}: 1 problem; nothing was run "
                                f"(see `remediate validate {bad}`)")
