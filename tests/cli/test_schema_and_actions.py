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


def test_list_actions_json_has_the_scoped_permissions(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list-actions", "--format", "json"]) == 0
    actions = {a["name"]: a for a in json.loads(capsys.readouterr().out)}
    assert actions["rescue.repair"]["scoped_permissions"] == [
        {"action": "ssm:SendCommand",
         "resources": ["arn:aws:ssm:*:*:document/AWS-RunPowerShellScript",
                       "arn:aws:ssm:*:*:document/AWS-RunShellScript"],
         "conditions": {}},
        {"action": "ssm:SendCommand", "resources": ["arn:aws:ec2:*:*:instance/*"],
         "conditions": {"StringEquals": {"aws:ResourceTag/remediate:role": "rescue"}}},
    ]
    reservations = ["arn:aws:ec2:*:*:capacity-reservation/*"]
    assert actions["ec2.stop"]["scoped_permissions"] == [
        {"action": "ec2:StopInstances", "resources": ["arn:aws:ec2:*:*:instance/*"],
         "conditions": {}, "on_targets": True},
        {"action": "ec2:CreateCapacityReservation", "resources": reservations,
         "conditions": {"StringEquals": {"aws:RequestTag/remediate:role": "capacity-hold"}}},
        {"action": "ec2:CreateTags", "resources": reservations, "conditions": {
            "StringEquals": {"ec2:CreateAction": "CreateCapacityReservation"}}}]


def test_list_actions_text_shows_each_scoped_permission_under_the_permissions(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list-actions"]) == 0
    blocks = {block.split("  ", 1)[0]: block
              for block in capsys.readouterr().out.rstrip("\n").split("\n\n")}
    assert blocks["ec2.snapshot_root"] == "\n".join([
        "ec2.snapshot_root  (mutating; ec2-instance)",
        "  snapshot the root volume (tagged backup), reusing this run's snapshot on re-run",
        "    with.volume_id (optional, a volume id (vol-...)): the volume to snapshot; default: "
        "the root volume found by ec2.inspect",
        "    with.wait (optional, true or false): wait until the snapshot is completed; false: "
        "go on once it has started (a snapshot is point-in-time from its start)",
        "    with.timeout (optional, a duration from 1s to 168h (seconds, or text like 30s, 5m, "
        "1h30m)): how long the snapshot may take to complete (2h)",
        "    outputs: snapshot_id, volume_id",
        "    permissions: ec2:DescribeInstances, ec2:DescribeSnapshots, ec2:CreateSnapshot, "
        "ec2:CreateTags",
        "      scoped: ec2:CreateSnapshot on arn:aws:ec2:*:*:volume/*",
        "      scoped: ec2:CreateSnapshot on arn:aws:ec2:*::snapshot/* if "
        "aws:RequestTag/remediate:purpose = backup",
        "      scoped: ec2:CreateTags on arn:aws:ec2:*::snapshot/* if ec2:CreateAction = "
        "CreateSnapshot",
    ])
    assert "      scoped: ec2:StopInstances on arn:aws:ec2:*:*:instance/* of the playbook's " \
           "targets (their tags)" in blocks["ec2.stop"]


def test_iam_policy_of_invalid_playbook(capsys: pytest.CaptureFixture[str]) -> None:
    bad = ROOT / "tests/language/corpus/invalid/12-unknown-action.yaml"
    assert main(["iam-policy", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "unknown action 'ec2.stopp'" in err
    assert err.strip().endswith(f"error: {bad}: 1 problem; nothing was run "
                                f"(see `remediate validate {bad}`)")
