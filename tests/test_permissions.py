"""`remediate iam-policy`: the least-privilege policy of each built-in playbook, exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from iam_grammar import problems
from policy_parts import DENY, INSPECT

from remediate.actions.scoped import Scoped, ec2_arn, resource_tag
from remediate.cli.main import main
from remediate.language.loader import load_file, load_text
from remediate.language.model import Playbook
from remediate.permissions import allow_statements, needed, policy_document

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOKS = sorted(path.name for path in (ROOT / "playbooks").glob("*.yaml"))

INSTANCES = "arn:aws:ec2:*:*:instance/*"
VOLUMES = "arn:aws:ec2:*:*:volume/*"
KMS_READ = {"Sid": "RemediateKms", "Effect": "Allow", "Action": ["kms:DescribeKey"],
            "Resource": "*"}
TAG_SNAPSHOT_ON_CREATE = {
    "Sid": "RemediateEc2CreateTagsSnapshot", "Effect": "Allow", "Action": ["ec2:CreateTags"],
    "Resource": ["arn:aws:ec2:*::snapshot/*"],
    "Condition": {"StringEquals": {"ec2:CreateAction": "CreateSnapshot"}}}
RESCUE_ONLY = {"StringEquals": {"aws:ResourceTag/remediate:role": "rescue"}}

OFFLINE_REPAIR = [
    {"Sid": "RemediateEc2", "Effect": "Allow", "Action": sorted([
        *INSPECT, "ec2:AttachVolume", "ec2:CreateSnapshot", "ec2:DescribeSnapshots",
        "ec2:DescribeSubnets", "ec2:DetachVolume", "ec2:ModifyInstanceAttribute",
        "ec2:StartInstances", "ec2:StopInstances"]), "Resource": "*"},
    KMS_READ,
    {"Sid": "RemediateSsm", "Effect": "Allow", "Action": [
        "ssm:DescribeInstanceInformation", "ssm:GetCommandInvocation", "ssm:GetParameter",
        "ssm:ListCommandInvocations"], "Resource": "*"},
    {"Sid": "RemediateEc2CreateTagsInstanceVolume", "Effect": "Allow",
     "Action": ["ec2:CreateTags"], "Resource": [INSTANCES, VOLUMES],
     "Condition": {"StringEquals": {"ec2:CreateAction": "RunInstances"}}},
    {"Sid": "RemediateEc2CreateTagsVolume", "Effect": "Allow", "Action": ["ec2:CreateTags"],
     "Resource": [VOLUMES],
     "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": [
         "remediate:delete-on-termination", "remediate:root-device", "remediate:root-of",
         "remediate:run-id"]}}},
    TAG_SNAPSHOT_ON_CREATE,
    {"Sid": "RemediateEc2RunInstancesInstanceVolume", "Effect": "Allow",
     "Action": ["ec2:RunInstances"], "Resource": [INSTANCES, VOLUMES],
     "Condition": {"StringEquals": {"aws:RequestTag/remediate:role": "rescue"}}},
    {"Sid": "RemediateEc2RunInstancesImageNetworkInterfaceSecurityGroupSnapshotSubnet",
     "Effect": "Allow", "Action": ["ec2:RunInstances"], "Resource": [
         "arn:aws:ec2:*:*:network-interface/*", "arn:aws:ec2:*:*:security-group/*",
         "arn:aws:ec2:*:*:subnet/*", "arn:aws:ec2:*::image/*", "arn:aws:ec2:*::snapshot/*"]},
    {"Sid": "RemediateEc2TerminateInstances", "Effect": "Allow",
     "Action": ["ec2:TerminateInstances"], "Resource": [INSTANCES], "Condition": RESCUE_ONLY},
    {"Sid": "RemediateIamPassRole", "Effect": "Allow", "Action": ["iam:PassRole"],
     "Resource": ["arn:aws:iam::*:role/*"],
     "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}},
    {"Sid": "RemediateKmsCreateGrant", "Effect": "Allow", "Action": ["kms:CreateGrant"],
     "Resource": ["arn:aws:kms:*:*:key/*"],
     "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}},
    {"Sid": "RemediateKmsDecrypt", "Effect": "Allow", "Action": ["kms:Decrypt"],
     "Resource": ["arn:aws:kms:*:*:key/*"],
     "Condition": {"StringLike": {"kms:ViaService": "ec2.*.amazonaws.com"}}},
    {"Sid": "RemediateSsmSendCommandInstance", "Effect": "Allow",
     "Action": ["ssm:SendCommand"], "Resource": [INSTANCES], "Condition": RESCUE_ONLY},
    {"Sid": "RemediateSsmSendCommandDocument", "Effect": "Allow",
     "Action": ["ssm:SendCommand"], "Resource": [
         "arn:aws:ssm:*:*:document/AWS-RunPowerShellScript",
         "arn:aws:ssm:*:*:document/AWS-RunShellScript"]},
    DENY,
]
REBOOT_FIRST = [
    {"Sid": "RemediateEc2", "Effect": "Allow", "Action": sorted([
        *INSPECT, "ec2:RebootInstances"]), "Resource": "*"},
    KMS_READ,
    {"Sid": "RemediateSsm", "Effect": "Allow", "Action": ["ssm:GetParameter"],
     "Resource": "*"},
    DENY,
]
REPLACE_ROOT_VOLUME = [
    {"Sid": "RemediateEc2", "Effect": "Allow", "Action": sorted([
        *INSPECT, "ec2:CreateReplaceRootVolumeTask", "ec2:CreateSnapshot",
        "ec2:DescribeReplaceRootVolumeTasks", "ec2:DescribeSnapshots"]), "Resource": "*"},
    KMS_READ,
    {"Sid": "RemediateSsm", "Effect": "Allow", "Action": ["ssm:GetParameter"],
     "Resource": "*"},
    {"Sid": "RemediateEc2CreateTagsReplaceRootVolumeTask", "Effect": "Allow",
     "Action": ["ec2:CreateTags"], "Resource": ["arn:aws:ec2:*:*:replace-root-volume-task/*"],
     "Condition": {"StringEquals": {"ec2:CreateAction": "CreateReplaceRootVolumeTask"}}},
    TAG_SNAPSHOT_ON_CREATE,
    DENY,
]
WORKSPACES_RECOVER = [
    {"Sid": "RemediateWorkspaces", "Effect": "Allow", "Action": [
        "workspaces:DescribeTags", "workspaces:DescribeWorkspaces",
        "workspaces:RebootWorkspaces", "workspaces:RebuildWorkspaces",
        "workspaces:RestoreWorkspace", "workspaces:StartWorkspaces"], "Resource": "*"},
    DENY,
]
EXPECTED = {
    "ec2-offline-repair.yaml": OFFLINE_REPAIR,
    "ec2-reboot-first.yaml": REBOOT_FIRST,
    "ec2-replace-root-volume.yaml": REPLACE_ROOT_VOLUME,
    "workspaces-recover.yaml": WORKSPACES_RECOVER,
}


def builtin(name: str) -> Playbook:
    loaded = load_file(ROOT / "playbooks" / name)
    assert loaded.playbook is not None, loaded.problems
    return loaded.playbook


def test_every_builtin_playbook_has_its_expected_policy() -> None:
    assert sorted(EXPECTED) == PLAYBOOKS


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_policy_of_builtin_playbook(name: str) -> None:
    assert policy_document(builtin(name)) == {"Version": "2012-10-17",
                                              "Statement": EXPECTED[name]}


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_policy_follows_the_iam_grammar(name: str) -> None:
    assert problems(policy_document(builtin(name))) == []


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_cli_prints_the_policy_as_json(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["iam-policy", str(ROOT / "playbooks" / name)]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == (json.dumps({"Version": "2012-10-17", "Statement": EXPECTED[name]},
                                     indent=2) + "\n", "")


def test_account_roles_are_assumed_and_the_deny_stays_last() -> None:
    loaded = load_text("""\
version: 1
name: two-accounts
targets:
  kind: workspace
  tags: {incident: crowdstrike-2024-07-19}
  accounts:
    - {name: prod, role_arn: "arn:aws:iam::210987654321:role/remediate"}
    - {name: dev, role_arn: "arn:aws:iam::123456789012:role/remediate"}
steps:
  - {id: reboot, action: workspaces.reboot}
""", "two-accounts.yaml", ".")
    assert loaded.playbook is not None, loaded.problems
    assert policy_document(loaded.playbook)["Statement"] == [
        {"Sid": "RemediateWorkspaces", "Effect": "Allow", "Action": [
            "workspaces:DescribeTags", "workspaces:DescribeWorkspaces",
            "workspaces:RebootWorkspaces"], "Resource": "*"},
        {"Sid": "RemediateAssumeRoles", "Effect": "Allow", "Action": ["sts:AssumeRole"],
         "Resource": ["arn:aws:iam::123456789012:role/remediate",
                      "arn:aws:iam::210987654321:role/remediate"]},
        DENY,
    ]


def test_a_broader_grant_makes_a_narrower_one_needless() -> None:
    tagged = Scoped("ssm:SendCommand", (ec2_arn("instance"),),
                    (resource_tag("remediate:role", "rescue"),))
    anywhere = Scoped("ssm:SendCommand", (ec2_arn("instance"),))
    describe = Scoped("ec2:DescribeInstances")
    assert needed([tagged, describe, anywhere, describe]) == [describe, anywhere]
    assert needed([tagged, Scoped("ssm:SendCommand")]) == [Scoped("ssm:SendCommand")]


def test_alike_scoped_grants_get_numbered_sids() -> None:
    rescue = Scoped("ec2:StopInstances", (ec2_arn("instance"),),
                    (resource_tag("remediate:role", "rescue"),))
    team = Scoped("ec2:StopInstances", (ec2_arn("instance"),),
                  (resource_tag("team", "sre"),))
    assert [s["Sid"] for s in allow_statements([team, rescue])] == [
        "RemediateEc2StopInstancesInstance1", "RemediateEc2StopInstancesInstance2"]


def test_the_grammar_check_finds_what_iam_refuses() -> None:
    bad: dict[str, Any] = {"Version": "2008-10-17", "Statement": [
        {"Sid": "a-b", "Effect": "Permit", "Action": [], "Resource": "i-123",
         "Condition": {"Equals": {"k": []}}, "Principal": "*"},
        {"Sid": "a-b", "Effect": "Deny", "Action": ["ec2:StopInstances", "ec2:StopInstances"]},
    ]}
    assert problems(bad) == [
        "Version is '2008-10-17', not '2012-10-17'",
        "Sid 'a-b' is used twice",
        "Statement[0]: unknown element Principal",
        "Statement[0]: Sid 'a-b' is not alphanumeric",
        "Statement[0]: Effect 'Permit' is not Allow or Deny",
        "Statement[0]: Action is not a string or a non-empty list",
        "Statement[0]: Resource 'i-123' is malformed",
        "Statement[0]: Condition operator 'Equals' is unknown",
        "Statement[0]: Condition Equals k is not a string or a non-empty list of strings",
        "Statement[1]: Resource is missing",
        "Statement[1]: Sid 'a-b' is not alphanumeric",
        "Statement[1]: Action 'ec2:StopInstances' is listed twice",
    ]
    assert problems({"Statement": []}) == [
        "a policy is an object with exactly Version and Statement"]
