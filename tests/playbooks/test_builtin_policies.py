"""Each built-in playbook runs on the sandbox under the policy `remediate iam-policy`
prints for it, the sandbox judging every request as IAM would (Sandbox.enforce_policy):
the run needs nothing the policy refuses, and the policy refuses what the run never does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from test_builtin_playbooks import PLAYBOOKS, healthy, root_mapping, run

from remediate.clock import VirtualClock
from remediate.language.loader import load_file
from remediate.permissions import CLAIM_TAG, policy_document
from remediate.sandbox import Fleet, FleetSpec, Sandbox
from remediate.sandbox.iam_eval import Authorization, decide

REPAIR = "ec2-offline-repair.yaml"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(clock=VirtualClock()) as sb:
        yield sb


def policy_of(name: str) -> dict[str, Any]:
    loaded = load_file(PLAYBOOKS / name)
    assert loaded.playbook is not None, loaded.problems
    return policy_document(loaded.playbook)


def refused(sb: Sandbox) -> list[str]:
    return [f"{j.action} on {j.resource}: {j.decision}" for j in sb.authorizations
            if not j.allowed]


def assert_every_change_was_judged_and_allowed(sb: Sandbox) -> None:
    """Every mutating request of the run (DryRun ones too) was judged, resource by
    resource, and every judgement allowed it."""
    calls = sb.api_calls
    judged = {j.call for j in sb.authorizations}
    changes = [i for i, call in enumerate(calls) if call.mutating or call.dry_run]
    assert changes and [calls[i].operation for i in changes if i not in judged] == []
    assert refused(sb) == []


# Each playbook, its fleet, how it is run, and what its dry run and its run exit with (as
# without a policy: a stop-protected target is refused, plain ones need more than reboots).
RUNS: dict[str, tuple[FleetSpec, dict[str, Any], int, int]] = {
    REPAIR: (FleetSpec(plain=3, stop_protected=1, azs=2), {}, 2, 2),
    "ec2-reboot-first.yaml": (FleetSpec(plain=1, reboot_fixable=2, reboots_to_fix=2, azs=1),
                              {}, 0, 2),
    "ec2-replace-root-volume.yaml": (FleetSpec(plain=2, azs=1), {
        "accepted": frozenset({"root-replacement-data-loss"})}, 0, 0),
    "workspaces-recover.yaml": (FleetSpec(plain=0, workspaces=4, azs=1), {
        "accepted": frozenset({"workspace-restore-data-loss",
                               "workspace-rebuild-data-loss"})}, 0, 0),
}


def test_every_builtin_playbook_is_run_here() -> None:
    assert sorted(RUNS) == sorted(p.name for p in PLAYBOOKS.glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_run_needs_nothing_its_policy_refuses(
        sandbox: Sandbox, tmp_path: Path, name: str) -> None:
    spec, options, plan_code, run_code = RUNS[name]
    fleet = sandbox.build_fleet(spec)
    if name == REPAIR:
        options = {"params": {"rescue_image_id": fleet.regions["us-east-1"].rescue_windows_ami}}
    sandbox.enforce_policy(policy_of(name))

    assert run(sandbox, name, tmp_path / "plan", dry_run=True, **options) == plan_code
    # EC2's permission probes (DryRun=True) were judged as the real calls will be.
    assert bool([j for j in sandbox.authorizations if j.dry_run]) == bool(fleet.targets)
    assert refused(sandbox) == []
    if name == REPAIR:  # the capacity hold's probe carries the tags its policy requires
        assert "ec2:CreateCapacityReservation" in {
            j.action for j in sandbox.authorizations if j.dry_run}

    sandbox.reset_api_calls()
    assert run(sandbox, name, tmp_path, **options) == run_code
    assert_every_change_was_judged_and_allowed(sandbox)
    for target in fleet.by_kind("plain") if name != "ec2-reboot-first.yaml" else ():
        assert healthy(sandbox, target.instance_id)


def test_the_offline_repair_under_its_policy_fixes_every_target(
        sandbox: Sandbox, tmp_path: Path) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=3, azs=1))
    sandbox.enforce_policy(policy_of(REPAIR))
    rescue = fleet.regions["us-east-1"].rescue_windows_ami
    assert run(sandbox, REPAIR, tmp_path, params={"rescue_image_id": rescue}) == 0
    assert_every_change_was_judged_and_allowed(sandbox)
    for target in fleet.targets:
        assert healthy(sandbox, target.instance_id)
        assert root_mapping(sandbox, target.instance_id)["Ebs"]["VolumeId"] == \
            target.root_volume_id
        assert not sandbox.channel_file_present(target.root_volume_id)
    judged = {(j.action, j.resource.rsplit(":", 1)[-1].split("/")[0])
              for j in sandbox.authorizations}
    assert {("ec2:StopInstances", "instance"), ("ec2:DetachVolume", "volume"),
            ("ec2:AttachVolume", "volume"), ("ec2:ModifyInstanceAttribute", "instance"),
            ("ec2:CreateSnapshot", "snapshot"), ("ssm:SendCommand", "document"),
            ("ec2:RunInstances", "image"), ("ec2:TerminateInstances", "instance")} <= judged


# --- what the policy refuses --------------------------------------------------------


def code_of(call: Any) -> str:
    with pytest.raises(ClientError) as failed:
        call()
    return str(failed.value.response["Error"]["Code"])


@pytest.fixture
def guarded(sandbox: Sandbox) -> tuple[Sandbox, Fleet, str]:
    """A fleet, an instance the playbook does not select (no incident tag), and the
    offline repair's policy enforced."""
    fleet = sandbox.build_fleet(FleetSpec(plain=2, azs=1))
    setup = fleet.regions["us-east-1"]
    (other,) = sandbox.client("ec2").run_instances(
        ImageId=setup.target_ami, InstanceType="m5.large", MinCount=1, MaxCount=1,
        SubnetId=next(iter(setup.subnets.values())))["Instances"]
    sandbox.enforce_policy(policy_of(REPAIR))
    return sandbox, fleet, str(other["InstanceId"])


def unmarked_volume(sb: Sandbox, zone: str) -> str:
    """An available volume remediate never marked (made as the account's other users do)."""
    policy = sb.world.policy
    sb.enforce_policy(None)
    volume = sb.client("ec2").create_volume(AvailabilityZone=zone, Size=8)["VolumeId"]
    sb.enforce_policy(policy)
    return str(volume)


def test_the_policy_stops_only_the_playbook_s_targets(
        guarded: tuple[Sandbox, Fleet, str]) -> None:
    sb, fleet, other = guarded
    ec2 = sb.client("ec2")
    assert code_of(lambda: ec2.stop_instances(InstanceIds=[other])) == "UnauthorizedOperation"
    target = fleet.targets[0].instance_id
    assert code_of(lambda: ec2.stop_instances(InstanceIds=[target], DryRun=True)) == \
        "DryRunOperation"


def test_the_policy_changes_no_attribute_but_delete_on_termination(
        guarded: tuple[Sandbox, Fleet, str]) -> None:
    sb, fleet, _ = guarded
    ec2, target = sb.client("ec2"), fleet.targets[0]
    assert code_of(lambda: ec2.modify_instance_attribute(
        InstanceId=target.instance_id, UserData={"Value": b"evil"})) == "UnauthorizedOperation"
    assert code_of(lambda: ec2.modify_instance_attribute(
        InstanceId=target.instance_id, Attribute="instanceType", Value="m5.24xlarge")) == \
        "UnauthorizedOperation"
    assert code_of(lambda: ec2.modify_instance_attribute(
        InstanceId=target.instance_id, DryRun=True, BlockDeviceMappings=[
            {"DeviceName": target.root_device_name, "Ebs": {"DeleteOnTermination": False}}])) \
        == "DryRunOperation"


def test_the_policy_marks_no_instance_a_rescue_instance_and_attaches_no_unmarked_volume(
        guarded: tuple[Sandbox, Fleet, str]) -> None:
    sb, fleet, other = guarded
    ec2 = sb.client("ec2")
    assert code_of(lambda: ec2.create_tags(Resources=[other], Tags=[
        {"Key": "remediate:role", "Value": "rescue"}])) == "UnauthorizedOperation"
    volume = unmarked_volume(sb, fleet.targets[0].availability_zone)
    assert code_of(lambda: ec2.attach_volume(
        VolumeId=volume, InstanceId=fleet.targets[0].instance_id,
        Device="/dev/sdf")) == "UnauthorizedOperation"
    # The Deny wins over any Allow.
    assert code_of(lambda: ec2.delete_volume(VolumeId=volume)) == "UnauthorizedOperation"
    assert [j.decision for j in sb.authorizations if j.action == "ec2:DeleteVolume"] == [
        "denied"]


def test_a_claim_tags_only_the_targets_and_only_its_own_key(
        guarded: tuple[Sandbox, Fleet, str]) -> None:
    sb, fleet, other = guarded
    ec2, target = sb.client("ec2"), fleet.targets[0].instance_id
    claim = [{"Key": CLAIM_TAG, "Value": "run r1 on host h since 2024-07-19T05:00:00Z"}]
    ec2.create_tags(Resources=[target], Tags=claim)
    ec2.delete_tags(Resources=[target], Tags=[{"Key": CLAIM_TAG}])
    assert code_of(lambda: ec2.create_tags(Resources=[other], Tags=claim)) == \
        "UnauthorizedOperation"
    assert code_of(lambda: ec2.create_tags(Resources=[target], Tags=[
        *claim, {"Key": "incident", "Value": "other"}])) == "UnauthorizedOperation"
    # DeleteTags naming no tag deletes them all: refused.
    assert code_of(lambda: ec2.delete_tags(Resources=[target])) == "UnauthorizedOperation"
    assert [(j.action, j.resource.rsplit("/", 1)[1], j.decision)
            for j in sb.authorizations] == [
        ("ec2:CreateTags", target, "allowed"), ("ec2:DeleteTags", target, "allowed"),
        ("ec2:CreateTags", other, "not allowed"), ("ec2:CreateTags", target, "not allowed"),
        ("ec2:DeleteTags", target, "not allowed")]


def test_a_workspaces_claim_is_its_own_key_only(sandbox: Sandbox) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=0, workspaces=1, azs=1))
    sandbox.enforce_policy(policy_of("workspaces-recover.yaml"))
    client, (workspace,) = sandbox.client("workspaces"), fleet.workspaces
    client.create_tags(ResourceId=workspace.workspace_id,
                       Tags=[{"Key": CLAIM_TAG, "Value": "run r1"}])
    assert code_of(lambda: client.create_tags(
        ResourceId=workspace.workspace_id, Tags=[{"Key": "incident", "Value": "x"}])) == \
        "AccessDeniedException"
    assert code_of(lambda: client.delete_tags(
        ResourceId=workspace.workspace_id, TagKeys=["incident"])) == "AccessDeniedException"
    # (moto has no WorkSpaces DeleteTags: judged here as the sandbox would judge it.)
    policy = policy_of("workspaces-recover.yaml")
    assert decide(policy, Authorization("workspaces:DeleteTags", "*",
                                        {"aws:TagKeys": (CLAIM_TAG,)})) == "allowed"
    assert decide(policy, Authorization("workspaces:DeleteTags", "*", {})) == "not allowed"
    assert code_of(lambda: client.terminate_workspaces(TerminateWorkspaceRequests=[
        {"WorkspaceId": workspace.workspace_id}])) == "AccessDeniedException"


def test_a_refusal_says_what_was_refused_as_aws_does(
        guarded: tuple[Sandbox, Fleet, str]) -> None:
    sb, fleet, other = guarded
    ec2 = sb.client("ec2")
    with pytest.raises(ClientError) as stopped:
        ec2.stop_instances(InstanceIds=[other])
    assert stopped.value.response["Error"] == {
        "Code": "UnauthorizedOperation",
        "Message": "You are not authorized to perform this operation. User: "
                   "arn:aws:iam::123456789012:user/remediate is not authorized to perform: "
                   "ec2:StopInstances on resource: "
                   f"arn:aws:ec2:us-east-1:123456789012:instance/{other} because no "
                   "identity-based policy allows the ec2:StopInstances action"}
    snapshot = fleet.targets[0].root_volume_id
    with pytest.raises(ClientError) as deleted:
        ec2.delete_volume(VolumeId=snapshot)
    assert deleted.value.response["Error"]["Message"].endswith(
        f"ec2:DeleteVolume on resource: arn:aws:ec2:us-east-1:123456789012:volume/{snapshot} "
        "with an explicit deny in an identity-based policy")
    sb.enforce_policy(None)  # and the volume is still there
    assert sb.client("ec2").describe_volumes(VolumeIds=[snapshot])["Volumes"]


def test_a_policy_naming_its_targets_lets_the_role_act_on_those_only(
        sandbox: Sandbox) -> None:
    fleet = sandbox.build_fleet(FleetSpec(plain=2, azs=1))
    named, other = (t.instance_id for t in fleet.targets)
    loaded = load_file(PLAYBOOKS / "ec2-reboot-first.yaml")
    assert loaded.playbook is not None
    playbook = loaded.playbook
    sandbox.enforce_policy(policy_document(playbook, replace(playbook.targets, ids=(named,))))
    ec2 = sandbox.client("ec2")
    assert code_of(lambda: ec2.reboot_instances(InstanceIds=[named], DryRun=True)) == \
        "DryRunOperation"
    assert code_of(lambda: ec2.reboot_instances(InstanceIds=[other], DryRun=True)) == \
        "UnauthorizedOperation"
