"""`remediate iam-policy`: the least-privilege policy of each built-in playbook, exactly."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from iam_grammar import parliament_findings, problems, sar_resource_types
from policy_parts import (
    CLAIM_KEY_ONLY,
    DENY,
    INCIDENT,
    INSPECT,
    INSTANCES,
    KMS_KEY_READ,
    KMS_READ,
    SNAPSHOTS,
    SSM_PARAMETER,
    SSM_SERVICE_SETTING,
    VOLUMES,
    WORKSPACES,
    ec2_claim,
)

from remediate.actions import registry
from remediate.actions.scoped import Scoped, ec2_arn, resource_tag
from remediate.actions.target_permissions import ONLY_BLOCK_DEVICE_MAPPINGS as ONLY_BDM
from remediate.actions.target_permissions import SETTABLE_ATTRIBUTES
from remediate.cli.main import main
from remediate.discovery import Overrides, select
from remediate.language.loader import load_file, load_text
from remediate.language.model import Playbook, TargetSelector
from remediate.permissions import (
    CLAIM_TAG,
    CLAIMS,
    NO_RESOURCE_LEVEL,
    allow_statements,
    is_read_only,
    needed,
    policy_document,
    size,
    size_warning,
    unscoped_warning,
)

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOKS = sorted(path.name for path in (ROOT / "playbooks").glob("*.yaml"))

TARGETS = {"StringEquals": INCIDENT}
TAG_SNAPSHOT_ON_CREATE = {
    "Sid": "RemediateEc2CreateTagsSnapshot", "Effect": "Allow", "Action": ["ec2:CreateTags"],
    "Resource": [SNAPSHOTS],
    "Condition": {"StringEquals": {"ec2:CreateAction": "CreateSnapshot"}}}
BACKUP = {"Sid": "RemediateEc2CreateSnapshotBackup", "Effect": "Allow",
          "Action": ["ec2:CreateSnapshot"], "Resource": [SNAPSHOTS],
          "Condition": {"StringEquals": {"aws:RequestTag/remediate:purpose": "backup"}}}
RESCUE_ONLY = {"StringEquals": {"aws:ResourceTag/remediate:role": "rescue"}}
# Every attribute ModifyInstanceAttribute could set but a root mapping's DeleteOnTermination.
ONLY_BLOCK_DEVICE_MAPPINGS = {"ec2:Attribute": "true", **{
    f"ec2:Attribute/{name}": "true" for name in (
        "DisableApiStop", "DisableApiTermination", "EbsOptimized", "EnaSupport",
        "InstanceInitiatedShutdownBehavior", "InstanceType", "Kernel", "Ramdisk",
        "SourceDestCheck", "SriovNetSupport", "UserData")}}

CAPACITY_RESERVATIONS = "arn:aws:ec2:*:*:capacity-reservation/*"
OFFLINE_REPAIR = [
    {"Sid": "RemediateEc2", "Effect": "Allow", "Action": sorted([
        *INSPECT, "ec2:DescribeCapacityReservations", "ec2:DescribeSnapshots",
        "ec2:DescribeSubnets"]), "Resource": "*"},
    KMS_READ,
    {"Sid": "RemediateSsm", "Effect": "Allow", "Action": [
        "ssm:DescribeInstanceInformation", "ssm:GetCommandInvocation", "ssm:GetParameter",
        "ssm:ListCommandInvocations"], "Resource": "*"},
    {"Sid": "RemediateEc2OnTargets", "Effect": "Allow", "Action": [
        "ec2:AttachVolume", "ec2:DetachVolume", "ec2:StartInstances", "ec2:StopInstances"],
     "Resource": [INSTANCES], "Condition": TARGETS},
    {"Sid": "RemediateOnRescue", "Effect": "Allow", "Action": [
        "ec2:AttachVolume", "ec2:DetachVolume", "ec2:TerminateInstances", "ssm:SendCommand"],
     "Resource": [INSTANCES], "Condition": RESCUE_ONLY},
    {"Sid": "RemediateEc2AttachVolumeMarkedRoot", "Effect": "Allow",
     "Action": ["ec2:AttachVolume"], "Resource": [VOLUMES],
     "Condition": {"Null": {"aws:ResourceTag/remediate:root-of": "false"}}},
    {"Sid": "RemediateEc2CapacityHold", "Effect": "Allow", "Action": [
        "ec2:CancelCapacityReservation", "ec2:ModifyCapacityReservation"],
     "Resource": [CAPACITY_RESERVATIONS], "Condition": {"StringEquals": {
         "aws:ResourceTag/remediate:role": "capacity-hold"}}},
    {"Sid": "RemediateEc2CreateCapacityReservationCapacityHold", "Effect": "Allow",
     "Action": ["ec2:CreateCapacityReservation"], "Resource": [CAPACITY_RESERVATIONS],
     "Condition": {"StringEquals": {"aws:RequestTag/remediate:role": "capacity-hold"}}},
    {"Sid": "RemediateEc2Volume", "Effect": "Allow", "Action": [
        "ec2:CreateSnapshot", "ec2:DetachVolume", "ec2:ModifyInstanceAttribute"],
     "Resource": [VOLUMES]},
    BACKUP,
    {"Sid": "RemediateEc2CreateTagsCapacityReservation", "Effect": "Allow",
     "Action": ["ec2:CreateTags"], "Resource": [CAPACITY_RESERVATIONS],
     "Condition": {"StringEquals": {"ec2:CreateAction": "CreateCapacityReservation"}}},
    ec2_claim(TARGETS),
    {"Sid": "RemediateEc2CreateTagsInstanceVolume", "Effect": "Allow",
     "Action": ["ec2:CreateTags"], "Resource": [INSTANCES, VOLUMES],
     "Condition": {"StringEquals": {"ec2:CreateAction": "RunInstances"}}},
    {"Sid": "RemediateEc2CreateTagsVolume", "Effect": "Allow", "Action": ["ec2:CreateTags"],
     "Resource": [VOLUMES],
     "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": [
         "remediate:delete-on-termination", "remediate:root-device", "remediate:root-of",
         "remediate:run-id"]}}},
    TAG_SNAPSHOT_ON_CREATE,
    {"Sid": "RemediateEc2ModifyInstanceAttributeOnTargets", "Effect": "Allow",
     "Action": ["ec2:ModifyInstanceAttribute"], "Resource": [INSTANCES],
     "Condition": {"Null": ONLY_BLOCK_DEVICE_MAPPINGS, **TARGETS}},
    {"Sid": "RemediateEc2RunInstancesInstanceVolume", "Effect": "Allow",
     "Action": ["ec2:RunInstances"], "Resource": [INSTANCES, VOLUMES],
     "Condition": {"StringEquals": {"aws:RequestTag/remediate:role": "rescue"}}},
    {"Sid": "RemediateEc2RunInstancesImageNetworkInterfaceSecurityGroupSnapshotSubnet",
     "Effect": "Allow", "Action": ["ec2:RunInstances"], "Resource": [
         "arn:aws:ec2:*:*:network-interface/*", "arn:aws:ec2:*:*:security-group/*",
         "arn:aws:ec2:*:*:subnet/*", "arn:aws:ec2:*::image/*", SNAPSHOTS]},
    {"Sid": "RemediateKmsCreateGrant", "Effect": "Allow", "Action": ["kms:CreateGrant"],
     "Resource": ["arn:aws:kms:*:*:key/*"],
     "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}},
    {"Sid": "RemediateKmsDecrypt", "Effect": "Allow", "Action": ["kms:Decrypt"],
     "Resource": ["arn:aws:kms:*:*:key/*"],
     "Condition": {"StringLike": {"kms:ViaService": "ec2.*.amazonaws.com"}}},
    KMS_KEY_READ,
    SSM_SERVICE_SETTING,
    {"Sid": "RemediateSsmSendCommand", "Effect": "Allow",
     "Action": ["ssm:SendCommand"], "Resource": [
         "arn:aws:ssm:*:*:document/AWS-RunPowerShellScript",
         "arn:aws:ssm:*:*:document/AWS-RunShellScript"]},
    DENY,
]
REBOOT_FIRST = [
    {"Sid": "RemediateEc2", "Effect": "Allow", "Action": INSPECT, "Resource": "*"},
    KMS_READ,
    SSM_PARAMETER,
    ec2_claim(TARGETS),
    {"Sid": "RemediateEc2RebootInstancesOnTargets", "Effect": "Allow",
     "Action": ["ec2:RebootInstances"], "Resource": [INSTANCES], "Condition": TARGETS},
    KMS_KEY_READ,
    SSM_SERVICE_SETTING,
    DENY,
]
REPLACE_ROOT_VOLUME = [
    {"Sid": "RemediateEc2", "Effect": "Allow", "Action": sorted([
        *INSPECT, "ec2:DescribeReplaceRootVolumeTasks", "ec2:DescribeSnapshots"]),
     "Resource": "*"},
    KMS_READ,
    SSM_PARAMETER,
    {"Sid": "RemediateEc2CreateReplaceRootVolumeTaskOnTargets", "Effect": "Allow",
     "Action": ["ec2:CreateReplaceRootVolumeTask"], "Resource": [INSTANCES],
     "Condition": TARGETS},
    {"Sid": "RemediateEc2CreateReplaceRootVolumeTaskImageReplaceRootVolumeTaskSnapshotVolume",
     "Effect": "Allow", "Action": ["ec2:CreateReplaceRootVolumeTask"], "Resource": [
         "arn:aws:ec2:*:*:replace-root-volume-task/*", VOLUMES, "arn:aws:ec2:*::image/*",
         SNAPSHOTS]},
    {"Sid": "RemediateEc2CreateSnapshotVolume", "Effect": "Allow",
     "Action": ["ec2:CreateSnapshot"], "Resource": [VOLUMES]},
    BACKUP,
    ec2_claim(TARGETS),
    {"Sid": "RemediateEc2CreateTagsReplaceRootVolumeTask", "Effect": "Allow",
     "Action": ["ec2:CreateTags"], "Resource": ["arn:aws:ec2:*:*:replace-root-volume-task/*"],
     "Condition": {"StringEquals": {"ec2:CreateAction": "CreateReplaceRootVolumeTask"}}},
    TAG_SNAPSHOT_ON_CREATE,
    KMS_KEY_READ,
    SSM_SERVICE_SETTING,
    DENY,
]
WORKSPACES_CLAIM = {
    "Sid": "RemediateWorkspacesClaimNoResourceLevelPermissions", "Effect": "Allow",
    "Action": ["workspaces:CreateTags", "workspaces:DeleteTags"], "Resource": "*",
    "Condition": CLAIM_KEY_ONLY}
WORKSPACES_RECOVER = [
    {"Sid": "RemediateWorkspaces", "Effect": "Allow", "Action": [
        "workspaces:DescribeTags", "workspaces:DescribeWorkspaces"], "Resource": "*"},
    WORKSPACES_CLAIM,
    {"Sid": "RemediateWorkspacesOnTargets", "Effect": "Allow", "Action": [
        "workspaces:RebootWorkspaces", "workspaces:RebuildWorkspaces",
        "workspaces:RestoreWorkspace", "workspaces:StartWorkspaces"],
     "Resource": [WORKSPACES], "Condition": TARGETS},
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
            "workspaces:DescribeTags", "workspaces:DescribeWorkspaces"], "Resource": "*"},
        WORKSPACES_CLAIM,
        {"Sid": "RemediateWorkspacesRebootWorkspacesOnTargets", "Effect": "Allow",
         "Action": ["workspaces:RebootWorkspaces"], "Resource": [WORKSPACES],
         "Condition": TARGETS},
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


# --- scoped to what the playbook selects --------------------------------------------


def selector_variants(playbook: Playbook) -> dict[str, TargetSelector]:
    """The playbook's own selector; with ``--tag team=payments``; with ``--tag owner``
    (any value); and as if the playbook had no ``targets.tags`` at all."""
    own = playbook.targets
    return {"own": own, "tag": select(own, Overrides(tags={"team": ("payments",)})),
            "key": select(own, Overrides(tags={"owner": ()})),
            "untagged": replace(own, tags={})}


def variants() -> list[tuple[str, str]]:
    return [(name, variant) for name in PLAYBOOKS
            for variant in ("own", "tag", "key", "untagged")]


def mutating_on_any_resource(policy: dict[str, Any]) -> list[str]:
    """Sid: action of every Allow on "*" that changes something, but those AWS authorizes
    on "*" only, each conditioned and saying so in its Sid."""
    found = []
    for statement in policy["Statement"]:
        if statement["Effect"] != "Allow" or statement["Resource"] != "*":
            continue
        for action in statement["Action"]:
            exception = (action in NO_RESOURCE_LEVEL and statement.get("Condition")
                         and statement["Sid"].endswith("NoResourceLevelPermissions"))
            if not is_read_only(action) and not exception:
                found.append(f"{statement['Sid']}: {action}")
    return found


@pytest.mark.parametrize(("name", "variant"), variants())
def test_no_change_is_allowed_on_any_resource(name: str, variant: str) -> None:
    playbook = builtin(name)
    policy = policy_document(playbook, selector_variants(playbook)[variant])
    assert mutating_on_any_resource(policy) == []
    assert problems(policy) == []


@pytest.mark.parametrize(("name", "variant"), variants())
def test_parliament_finds_nothing_high_and_no_change_on_any_resource(
        name: str, variant: str) -> None:
    playbook = builtin(name)
    findings = parliament_findings(policy_document(playbook,
                                                   selector_variants(playbook)[variant]))
    assert [f for f in findings if f[0] in ("HIGH", "CRITICAL")] == []
    # parliament's "Unnecessary use of Resource *": only reads (Describe, Get) are left.
    starred = [action for _, issue, detail in findings if issue == "RESOURCE_STAR"
               for action in detail]
    assert [action for action in starred if not is_read_only(action)] == []
    # Every condition key is one IAM documents for the action.
    assert [f for f in findings if f[1] == "UNKNOWN_CONDITION_FOR_ACTION"] == []


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_every_resource_is_of_a_type_the_action_authorizes(name: str) -> None:
    """Each ARN's resource type is one the Service Authorization Reference lists for the
    action: a statement naming another type would never match, and the call would fail."""
    wrong = []
    for statement in policy_document(builtin(name))["Statement"][:-1]:
        assert statement["Effect"] == "Allow"
        resources = statement["Resource"]
        for action in statement["Action"]:
            types = sar_resource_types(action)
            assert types is not None, action
            for resource in ([] if resources == "*" else resources):
                kind = resource.split(":", 5)[5].split("/", 1)[0]
                if kind not in types:
                    wrong.append(f"{statement['Sid']}: {action} on {kind}")
            if resources == "*" and types and not is_read_only(action):
                wrong.append(f"{statement['Sid']}: {action} on * (it takes {sorted(types)})")
    assert wrong == []


def test_the_exceptions_on_any_resource_have_no_resource_level_permissions() -> None:
    assert {action: sar_resource_types(action) for action in NO_RESOURCE_LEVEL} == {
        "workspaces:CreateTags": frozenset(), "workspaces:DeleteTags": frozenset()}


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_the_policy_fits_a_managed_policy(name: str) -> None:
    """IAM quota: a managed policy holds 6,144 characters, whitespace not counted
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html)."""
    policy = policy_document(builtin(name), selector_variants(builtin(name))["tag"])
    assert size(policy) == len(re.sub(r"\s", "", json.dumps(policy))) <= 6144
    assert size_warning(policy) is None


def test_a_policy_too_large_for_a_managed_policy_is_said_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = ", ".join(f"i-{n:017x}" for n in range(60))
    path = copy_selecting(tmp_path, "ec2-reboot-first.yaml", f"  ids: [{ids}]\n")
    assert main(["iam-policy", str(path)]) == 0
    out, err = capsys.readouterr()
    found = size(json.loads(out))
    assert 6144 < found <= 10240
    assert err == (f"warning: the policy is {found:,} characters, more than a managed policy "
                   "holds (6,144): attach it inline (up to 10,240 for all of a role's) or "
                   "select the targets by tags rather than by ids\n")


def test_the_tag_option_scopes_the_targets_as_run_selects_them() -> None:
    playbook = builtin("ec2-reboot-first.yaml")
    reboot = {"Sid": "RemediateEc2RebootInstancesOnTargets", "Effect": "Allow",
              "Action": ["ec2:RebootInstances"], "Resource": [INSTANCES]}
    scoped = selector_variants(playbook)
    # Another key: both tags must be on the instance.
    assert reboot | {"Condition": {"StringEquals": {
        **INCIDENT, "aws:ResourceTag/team": "payments"}}} in policy_document(
        playbook, scoped["tag"])["Statement"]
    # The same key: its value replaced; several values: any of them.
    replaced = select(playbook.targets, Overrides(tags={"incident": ("a", "b")}))
    assert reboot | {"Condition": {"StringEquals": {
        "aws:ResourceTag/incident": ["a", "b"]}}} in policy_document(
        playbook, replaced)["Statement"]
    # A key with no value: any value, the tag must be there.
    assert reboot | {"Condition": {"StringEquals": INCIDENT,
                                   "Null": {"aws:ResourceTag/owner": "false"}}} in (
        policy_document(playbook, scoped["key"])["Statement"])


def test_a_playbook_selecting_by_no_tag_may_act_on_any_instance_and_says_so() -> None:
    playbook = builtin("ec2-offline-repair.yaml")
    untagged = selector_variants(playbook)["untagged"]
    statements = {s["Sid"]: s for s in policy_document(playbook, untagged)["Statement"]}
    assert statements["RemediateEc2OnTargets"] == {
        "Sid": "RemediateEc2OnTargets", "Effect": "Allow", "Action": [
            "ec2:AttachVolume", "ec2:DetachVolume", "ec2:StartInstances", "ec2:StopInstances"],
        "Resource": [INSTANCES]}
    # Still only that one attribute, still only the claim tag.
    assert statements["RemediateEc2ModifyInstanceAttributeOnTargets"]["Condition"] == {
        "Null": ONLY_BLOCK_DEVICE_MAPPINGS}
    assert statements["RemediateEc2Claim"]["Condition"] == CLAIM_KEY_ONLY
    assert unscoped_warning(playbook, untagged) == (
        f"{playbook.source} selects its targets by no tag (targets.tags) and no id "
        "(targets.ids), so the policy allows ec2:AttachVolume, ec2:CreateTags, "
        "ec2:DeleteTags, ec2:DetachVolume, ec2:ModifyInstanceAttribute, ec2:StartInstances, "
        "ec2:StopInstances on every EC2 instance in the account; give targets.tags or --tag "
        "KEY=VALUE (the tags the run "
        "selects by) to scope it to them")
    assert unscoped_warning(playbook) is None


def copy_selecting(tmp_path: Path, name: str, selector: str) -> Path:
    """The built-in playbook selecting its targets by ``selector`` instead of by tag."""
    text = (ROOT / "playbooks" / name).read_text()
    changed = text.replace("  tags:\n    incident: crowdstrike-2024-07-19\n", selector)
    assert changed != text
    path = tmp_path / name
    path.write_text(changed)
    return path


def test_cli_warns_about_a_playbook_selecting_by_no_tag(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = copy_selecting(tmp_path, "ec2-reboot-first.yaml", "")  # by its filters only
    assert main(["iam-policy", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == (
        f"warning: {path} selects its targets by no tag (targets.tags) and no id "
        "(targets.ids), so the policy allows ec2:CreateTags, ec2:DeleteTags, "
        "ec2:RebootInstances on every EC2 instance in the account; give targets.tags or "
        "--tag KEY=VALUE (the tags the run selects by) to scope it to them\n")
    reboot = {"Sid": "RemediateEc2RebootInstancesOnTargets", "Effect": "Allow",
              "Action": ["ec2:RebootInstances"], "Resource": [INSTANCES]}
    assert json.loads(out)["Statement"][-4:-1] == [reboot, KMS_KEY_READ, SSM_SERVICE_SETTING]

    assert main(["iam-policy", str(path), "--tag", "team=sre"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert json.loads(out)["Statement"][-4] == reboot | {
        "Condition": {"StringEquals": {"aws:ResourceTag/team": "sre"}}}


def test_a_playbook_naming_its_targets_is_scoped_to_their_arns(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = copy_selecting(tmp_path, "workspaces-recover.yaml",
                          "  ids: [ws-0123456789, ws-abcdef0123]\n")
    assert main(["iam-policy", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert json.loads(out)["Statement"][2] == {
        "Sid": "RemediateWorkspacesOnTargets", "Effect": "Allow", "Action": [
            "workspaces:RebootWorkspaces", "workspaces:RebuildWorkspaces",
            "workspaces:RestoreWorkspace", "workspaces:StartWorkspaces"],
        "Resource": ["arn:aws:workspaces:*:*:workspace/ws-0123456789",
                     "arn:aws:workspaces:*:*:workspace/ws-abcdef0123"]}


def test_cli_refuses_a_malformed_tag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["iam-policy", str(ROOT / "playbooks" / "ec2-reboot-first.yaml"),
                 "--tag", "team="]) == 1
    assert capsys.readouterr().err == (
        "error: --tag expects KEY=VALUE (or KEY), got 'team='\n")


def test_a_role_is_passed_only_to_a_rescue_instance_profile() -> None:
    playbook = builtin("ec2-offline-repair.yaml")
    actions = {a for s in policy_document(playbook)["Statement"] for a in s["Action"]}
    assert "iam:PassRole" not in actions
    with_profile = replace(playbook, steps=tuple(
        replace(step, params={**step.params, "instance_profile": "remediate-rescue"})
        if step.action == "rescue.attach_volume" else step for step in playbook.steps))
    (passing,) = [s for s in policy_document(with_profile)["Statement"]
                  if "iam:PassRole" in s["Action"]]
    assert passing == {"Sid": "RemediateIamPassRole", "Effect": "Allow",
                       "Action": ["iam:PassRole"], "Resource": ["arn:aws:iam::*:role/*"],
                       "Condition": {"StringEquals": {
                           "iam:PassedToService": "ec2.amazonaws.com"}}}


def test_the_rescue_instance_profile_parameter_passes_its_role(
        capsys: pytest.CaptureFixture[str]) -> None:
    """ec2-offline-repair's rescue_instance_profile (empty by default): given with --param,
    as the run will be, the policy lets the role be passed to EC2."""
    path = str(ROOT / "playbooks" / "ec2-offline-repair.yaml")
    assert main(["iam-policy", path]) == 0
    assert "iam:PassRole" not in capsys.readouterr().out
    assert main(["iam-policy", path, "--param", "rescue_instance_profile=rescue-ssm"]) == 0
    statements = json.loads(capsys.readouterr().out)["Statement"]
    assert [s for s in statements if s["Action"] == ["iam:PassRole"]] == [{
        "Sid": "RemediateIamPassRole", "Effect": "Allow", "Action": ["iam:PassRole"],
        "Resource": ["arn:aws:iam::*:role/*"],
        "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}}]


def test_only_block_device_mappings_covers_every_attribute_iam_can_see() -> None:
    """The ModifyInstanceAttribute parameters IAM has an ec2:Attribute/NAME key for (the
    primitive ones and the AttributeValue objects holding only Value, EC2 User Guide) are
    all required absent; ec2:Attribute too (the Attribute=..., Value=... form)."""
    shape = botocore.session.get_session().get_service_model("ec2").operation_model(
        "ModifyInstanceAttribute").input_shape
    keyed = sorted(name for name, member in shape.members.items()
                   if name not in ("InstanceId", "DryRun", "Attribute", "Value")
                   and (member.type_name in ("string", "boolean", "integer")
                        or (member.type_name == "structure"
                            and list(member.members) == ["Value"])))
    assert list(SETTABLE_ATTRIBUTES) == keyed
    assert {c.key for c in ONLY_BDM} == {"ec2:Attribute", *(f"ec2:Attribute/{n}" for n in keyed)}
    assert {c.values for c in ONLY_BDM} == {("true",)}
    assert set(ONLY_BLOCK_DEVICE_MAPPINGS) == {c.key for c in ONLY_BDM}


def test_a_change_on_any_resource_must_be_one_aws_scopes_no_other_way() -> None:
    with pytest.raises(ValueError) as refused:
        allow_statements([Scoped("ec2:StopInstances", ("*",),
                                 (resource_tag("team", "sre"),))])
    assert str(refused.value) == (
        "ec2:StopInstances is granted on any resource, but AWS supports resource-level "
        "permissions for it: name its resources")


def test_claims_are_granted_to_every_playbook_that_changes_its_targets() -> None:
    for name in PLAYBOOKS:
        playbook = builtin(name)
        claims = [s for s in policy_document(playbook)["Statement"]
                  if s["Sid"].startswith(("RemediateEc2Claim", "RemediateWorkspacesClaim"))]
        assert claims == [ec2_claim(TARGETS) if playbook.targets.kind == "ec2-instance"
                          else WORKSPACES_CLAIM], name
    assert CLAIM_TAG == "remediate:claim"
    assert {kind: sorted(g.action for g in grants) for kind, grants in CLAIMS.items()} == {
        "ec2-instance": ["ec2:CreateTags", "ec2:DeleteTags", "ec2:DescribeTags"],
        "workspace": ["workspaces:CreateTags", "workspaces:DeleteTags", "workspaces:DescribeTags"]}


def test_run_command_sends_to_the_target_or_to_the_instance_the_step_names() -> None:
    action = registry.get("ssm.run_command")
    assert action is not None
    (to_target,) = [g for g in action.grants({}) if INSTANCES in g.resources]
    assert to_target.on_targets and to_target.bound((resource_tag("team", "sre"),)).conditions
    (named,) = [g for g in action.grants({"instance_id": "i-0123456789abcdef0"})
                if INSTANCES in g.resources]
    assert not named.on_targets and named.conditions == ()
