from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import pytest

from ec2_harness import Ec2Env
from remediate.actions.contract import Plan, PlannedCall, StepContext, Target
from remediate.actions.ec2_inspect import ROOT_OF_TAG, SharedAnswers, own_entry
from remediate.actions.registry import get
from remediate.actions.requests import Call, Gate, StepFailed
from remediate.executor.driver import SyncRuntime, run_action
from remediate.kinds import KINDS


def test_facts_of_a_plain_target(ec2_env: Ec2Env) -> None:
    target = ec2_env.target("plain", 1)
    built = ec2_env.fleet.target(target.id)
    facts = ec2_env.facts(target)
    assert set(facts) == set(KINDS["ec2-instance"].facts)
    public_ip = ec2_env.instance(target.id)["PublicIpAddress"]
    assert {k: v for k, v in facts.items() if k != "tags"} == {
        "id": target.id,
        "region": "us-east-1",
        "account": "default",
        "state": "running",
        "status": "impaired",
        "availability_zone": built.availability_zone,
        "instance_type": "m5.large",
        "platform": "windows",
        "image_id": built.image_id,
        "root_device_name": "/dev/sda1",
        "root_volume_id": built.root_volume_id,
        "root_delete_on_termination": True,
        "root_encrypted": False,
        "kms_key_id": None,
        "kms_key_usable": None,
        "lifecycle": "on-demand",
        "spot_request_type": None,
        "product_codes": [],
        "hibernation": False,
        "stop_protection": False,
        "instance_store": False,
        "public_ip": public_ip,
        "has_elastic_ip": False,
        "rescue_image_id": None,  # read only for a playbook launching rescue instances
        "rescue_image_state": None,
        "rescue_ssm": None,
        "kms_key_access": None,  # judged only for a playbook moving the root volume
    }
    assert facts["tags"]["incident"] == "crowdstrike-2024-07-19"


def test_the_rescue_image_is_read_once_per_region(ec2_env: Ec2Env) -> None:
    rescue = ec2_env.fleet.regions["us-east-1"].rescue_windows_ami
    targets = [Target("ec2-instance", t.instance_id, t.region) for t in ec2_env.fleet.targets
               if t.region == "us-east-1"]
    states = [ec2_env.run("ec2.inspect", t, {"rescue_image_id": rescue})["rescue_image_state"]
              for t in targets]
    assert len(targets) > 1 and states == ["available"] * len(targets)
    assert ec2_env.calls("DescribeImages") == 1

    missing = ec2_env.run("ec2.inspect", targets[0], {"rescue_image_id": "ami-12345678"})
    assert missing["rescue_image_state"] == "not found"
    runtime = ec2_env.denying("UnauthorizedOperation", "DescribeImages")
    unknown = run_action("ec2.inspect", targets[0], {"rescue_image_id": "ami-87654321"},
                         runtime)
    assert unknown["rescue_image_state"] is None


WINDOWS_2022 = ("resolve:ssm:/aws/service/ami-windows-latest/"
                "Windows_Server-2022-English-Full-Base")


def test_a_resolve_ssm_rescue_image_is_resolved_once_per_account_and_region(
        ec2_env: Ec2Env) -> None:
    targets = [Target("ec2-instance", t.instance_id, t.region) for t in ec2_env.fleet.targets
               if t.region == "us-east-1"]

    found = [ec2_env.run("ec2.inspect", t, {"rescue_image_id": WINDOWS_2022}) for t in targets]

    rescue = ec2_env.fleet.regions["us-east-1"].rescue_windows_ami
    assert len(targets) > 1
    assert {(f["rescue_image_id"], f["rescue_image_state"]) for f in found} == {
        (rescue, "available")}
    assert ec2_env.calls("GetParameter", "ssm") == 1
    assert ec2_env.calls("DescribeImages") == 1  # of the AMI it resolved to
    # An AMI id is its own rescue image: nothing to resolve.
    plain = ec2_env.run("ec2.inspect", targets[0], {"rescue_image_id": rescue})
    assert (plain["rescue_image_id"], ec2_env.calls("GetParameter", "ssm")) == (rescue, 1)


@pytest.mark.parametrize(("image", "state"), [
    ("resolve:ssm:/no/such/parameter",
     "unresolved: SSM parameter /no/such/parameter does not exist"),
    ("resolve:ssm:/golden/rescue", "unresolved: SSM parameter /golden/rescue holds "
                                   "'Windows Server 2022', not an AMI id"),
    ("resolve:ssm:/golden/rescue:7", "unresolved: SSM parameter /golden/rescue:7 does not exist"),
])
def test_a_parameter_naming_no_ami_says_why_in_the_rescue_image_state(
        ec2_env: Ec2Env, image: str, state: str) -> None:
    ec2_env.sandbox.client("ssm").put_parameter(Name="/golden/rescue", Type="String",
                                                Value="Windows Server 2022")

    facts = ec2_env.run("ec2.inspect", ec2_env.target(), {"rescue_image_id": image})

    assert (facts["rescue_image_id"], facts["rescue_image_state"]) == (None, state)
    assert ec2_env.calls("DescribeImages") == 0


def test_a_parameter_the_caller_may_not_read_leaves_the_rescue_image_unknown(
        ec2_env: Ec2Env) -> None:
    runtime = ec2_env.denying("AccessDeniedException", "GetParameter")

    facts = run_action("ec2.inspect", ec2_env.target(), {"rescue_image_id": WINDOWS_2022},
                       runtime)

    assert (facts["rescue_image_id"], facts["rescue_image_state"]) == (None, None)


def test_an_elastic_ip_is_recognised(ec2_env: Ec2Env) -> None:
    with_eip = next(t for t in ec2_env.fleet.targets if t.elastic_ip)
    facts = ec2_env.facts(Target("ec2-instance", with_eip.instance_id, with_eip.region))
    assert (facts["public_ip"], facts["has_elastic_ip"]) == (with_eip.elastic_ip, True)


@pytest.mark.parametrize(("kind", "expected"), [
    ("instance_store", {"instance_store": True, "instance_type": "m5d.large"}),
    ("stop_protected", {"stop_protection": True}),
    ("marketplace", {"product_codes": ["sandboxmarketplace0000001"]}),
    ("hibernation", {"hibernation": True, "root_encrypted": True, "kms_key_usable": True}),
    ("spot_persistent", {"lifecycle": "spot"}),
])
def test_risky_targets(ec2_env: Ec2Env, kind: str, expected: dict[str, Any]) -> None:
    facts = ec2_env.facts(ec2_env.target(kind))
    assert {k: facts[k] for k in expected} == expected


def test_a_key_pending_deletion_is_unusable(ec2_env: Ec2Env) -> None:
    facts = ec2_env.facts(ec2_env.target("encrypted_bad_key"))
    key = ec2_env.fleet.regions["us-east-1"].bad_kms_key_id
    assert (facts["root_encrypted"], facts["kms_key_id"], facts["kms_key_usable"]) == (
        True, key, False)


@pytest.mark.parametrize("request_type", ["one-time", "persistent"])
def test_spot_request_type_comes_from_the_spot_request(ec2_env: Ec2Env,
                                                       request_type: str) -> None:
    image = ec2_env.fleet.regions["us-east-1"].target_ami
    request = ec2_env.client.request_spot_instances(
        InstanceCount=1, Type=request_type,
        LaunchSpecification={"ImageId": image, "InstanceType": "m5.large"},
    )["SpotInstanceRequests"][0]
    facts = ec2_env.facts(Target("ec2-instance", request["InstanceId"], "us-east-1"))
    assert (facts["lifecycle"], facts["spot_request_type"]) == ("spot", request_type)


def test_shared_answers_cost_one_call_per_type_key_and_region(ec2_env: Ec2Env) -> None:
    for target in ec2_env.fleet.targets:
        ec2_env.facts(Target("ec2-instance", target.instance_id, target.region))
    assert len(ec2_env.fleet.targets) == 10
    assert ec2_env.calls("DescribeInstanceTypes") == 2  # m5.large, m5d.large
    assert ec2_env.calls("DescribeAddresses") == 1
    assert ec2_env.calls("DescribeKey", "kms") == 2  # the bad key, the hibernation key
    assert ec2_env.calls("DescribeInstances") == 10


def test_missing_permissions_make_facts_unknown(ec2_env: Ec2Env) -> None:
    target = ec2_env.target("encrypted_bad_key")
    runtime = ec2_env.denying("UnauthorizedOperation", "DescribeInstanceAttribute",
                              "DescribeAddresses")
    facts = run_action("ec2.inspect", target, {}, runtime)
    assert (facts["stop_protection"], facts["has_elastic_ip"]) == (None, None)
    runtime = ec2_env.denying("AccessDeniedException", "DescribeKey")
    assert run_action("ec2.inspect", target, {}, runtime)["kms_key_usable"] is None


def test_other_errors_fail_the_inspection(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    runtime = ec2_env.denying("InvalidParameterValue", "DescribeInstanceAttribute")
    with pytest.raises(StepFailed) as failed:
        run_action("ec2.inspect", target, {}, runtime)
    assert str(failed.value) == (
        "DescribeInstanceAttribute failed: InvalidParameterValue: not for you")


def test_a_missing_instance_fails_with_its_id(ec2_env: Ec2Env) -> None:
    with pytest.raises(StepFailed) as failed:
        ec2_env.facts(Target("ec2-instance", "i-0123456789abcdef0", "us-east-1"))
    assert str(failed.value) == "instance i-0123456789abcdef0 not found"


def test_a_detached_root_is_found_by_its_tags(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    original = ec2_env.facts(target)
    ec2_env.run("ec2.stop", target)
    ec2_env.run("ec2.detach_root", target, facts=original)
    again = ec2_env.facts(target)
    keys = ("root_volume_id", "root_device_name", "root_delete_on_termination")
    assert {k: again[k] for k in keys} == {k: original[k] for k in keys}
    assert again["state"] == "stopped"


def test_an_untagged_detached_root_is_unknown(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    volume_id = ec2_env.fleet.target(target.id).root_volume_id
    ec2_env.run("ec2.stop", target)
    ec2_env.client.detach_volume(VolumeId=volume_id, InstanceId=target.id, Device="/dev/sda1")
    ec2_env.settle()
    facts = ec2_env.facts(target)
    assert (facts["root_volume_id"], facts["root_encrypted"]) == (None, False)


def test_two_tagged_roots_fail_naming_both(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    volume_id = ec2_env.fleet.target(target.id).root_volume_id
    ec2_env.run("ec2.stop", target)
    ec2_env.run("ec2.detach_root", target)
    other = ec2_env.client.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    ec2_env.client.create_tags(Resources=[other], Tags=[{"Key": ROOT_OF_TAG, "Value": target.id}])
    with pytest.raises(StepFailed) as failed:
        ec2_env.facts(target)
    # In the order AWS lists them (Step Functions cannot sort them).
    listed = ec2_env.client.describe_volumes(Filters=[
        {"Name": f"tag:{ROOT_OF_TAG}", "Values": [target.id]}])["Volumes"]
    assert sorted(v["VolumeId"] for v in listed) == sorted([volume_id, other])
    ids = ", ".join(v["VolumeId"] for v in listed)
    assert str(failed.value) == (
        f"{target.id} has no root volume attached and 2 volumes are tagged "
        f"{ROOT_OF_TAG}={target.id} ({ids}); say which one with volume_id")


def test_plan_is_read_only(ec2_env: Ec2Env) -> None:
    action = get("ec2.inspect")
    assert action is not None and not action.mutating
    ctx = StepContext("run-1", ec2_env.target(), {}, ec2_env.runtime)
    plan = action.plan(ctx, {})
    assert plan == Plan(calls=tuple(PlannedCall(api, False) for api in (
        "ec2:DescribeInstances", "ec2:DescribeInstanceStatus", "ec2:DescribeVolumes",
        "ec2:DescribeInstanceAttribute")))


# --- SharedAnswers, driven by hand as the executor would interleave two targets ---


class _Runtime:
    def __init__(self) -> None:
        self.clock: Any = None
        self.opened: list[str] = []
        self.shared = SharedAnswers("run-1")

    def open_gate(self, key: str) -> None:
        self.opened.append(key)

    def service(self, cls: type[Any]) -> Any:
        return self.shared


def _ask(runtime: _Runtime, fetch_value: str | Exception) -> Generator[Any, Any, Any]:
    ctx = StepContext("run-1", Target("ec2-instance", "i-1", "us-east-1"), {}, runtime)

    def fetch() -> Generator[Any, Any, Any]:
        response = yield Call("ec2", "DescribeInstanceTypes", {})
        if isinstance(fetch_value, Exception):
            raise fetch_value
        return response[fetch_value]

    return (yield from runtime.shared.ask(ctx, "k", fetch))


def _finish(gen: Generator[Any, Any, Any], value: Any) -> Any:
    with pytest.raises(StopIteration) as stop:
        gen.send(value)
    return stop.value.value


def test_a_second_asker_parks_on_the_gate_and_reads_the_first_ones_answer() -> None:
    runtime = _Runtime()
    first, second = _ask(runtime, "answer"), _ask(runtime, "answer")
    assert isinstance(next(first), Call)
    assert next(second) == Gate("shared-answer:k")
    assert _finish(first, {"answer": 42}) == 42
    assert runtime.opened == ["shared-answer:k"]
    assert _finish(second, None) == 42
    third = _ask(runtime, "answer")
    assert _finish(third, None) == 42  # cached: no call at all


def test_a_failed_fetch_opens_the_gate_and_the_parked_asker_fetches_itself() -> None:
    runtime = _Runtime()
    first, second = _ask(runtime, RuntimeError("boom")), _ask(runtime, "answer")
    next(first)
    assert next(second) == Gate("shared-answer:k")
    with pytest.raises(RuntimeError):
        first.send({})
    assert runtime.opened == ["shared-answer:k"]
    assert isinstance(second.send(None), Call)
    assert _finish(second, {"answer": 7}) == 7


def test_own_entry_picks_this_target_out_of_a_merged_response() -> None:
    merged = {"StoppingInstances": [{"InstanceId": "i-1", "n": 1}, {"InstanceId": "i-2", "n": 2}]}
    assert own_entry(merged, "StoppingInstances", "i-2") == {"InstanceId": "i-2", "n": 2}
    assert own_entry(merged, "StoppingInstances", "i-3") is None
    assert own_entry({}, "StoppingInstances", "i-1") is None


def test_whether_rescue_instances_reach_ssm_is_read_once_per_account_and_region(
        ec2_env: Ec2Env) -> None:
    targets = [Target("ec2-instance", t.instance_id, t.region) for t in ec2_env.fleet.targets
               if t.region == "us-east-1"]

    found = {ec2_env.run("ec2.inspect", t, {"rescue_ssm": True})["rescue_ssm"] for t in targets}

    assert len(targets) > 1
    assert found == {"dhmc: service-role/AWSSystemsManagerDefaultEC2InstanceManagementRole"}
    assert ec2_env.calls("GetServiceSetting", "ssm") == 1
    # A profile decides alone; DHMC is not asked.
    profiled = ec2_env.run("ec2.inspect", targets[0],
                           {"rescue_ssm": True, "rescue_instance_profile": "rescue-ssm"})
    assert profiled["rescue_ssm"] == "instance-profile: rescue-ssm"
    assert ec2_env.calls("GetServiceSetting", "ssm") == 1
    # Not allowed to read it: unknown, and why.
    runtime = ec2_env.denying("AccessDeniedException", "GetServiceSetting")
    denied = run_action("ec2.inspect", targets[0], {"rescue_ssm": True}, runtime)
    assert denied["rescue_ssm"] == (
        "unknown: GetServiceSetting: AccessDeniedException: not for you; grant "
        "ssm:GetServiceSetting on arn:aws:ssm:us-east-1:*:servicesetting/ssm/managed-instance/"
        "default-ec2-instance-management-role")


def test_kms_key_access_is_judged_once_per_key_and_left_unchecked_when_kms_will_not_say(
        ec2_env: Ec2Env) -> None:
    # The hibernation target's root is encrypted with an enabled key of KMS's default
    # policy (the account's root: IAM decides).
    target = ec2_env.target("hibernation")
    key = ec2_env.facts(target)["kms_key_id"]
    kms = ec2_env.sandbox.client("kms")
    caller = ec2_env.sandbox.client("sts").get_caller_identity()["Arn"]

    first = ec2_env.run("ec2.inspect", target, {"kms_access": True})["kms_key_access"]
    again = ec2_env.run("ec2.inspect", target, {"kms_access": True})["kms_key_access"]

    assert first == again == {
        "verdict": "unchecked", "key": key, "principal": caller,
        "actions": ["kms:CreateGrant", "kms:Decrypt"],
        "why": "the key policy leaves it to IAM policies (it allows "
               "arn:aws:iam::123456789012:root), which a run does not read: `remediate "
               "readiness` checks them (iam:SimulatePrincipalPolicy)"}
    assert (ec2_env.calls("GetKeyPolicy", "kms"), ec2_env.calls("GetCallerIdentity", "sts"),
            ec2_env.calls("ListGrants", "kms")) == (1, 2, 1)  # one GetCallerIdentity: ours
    # Not asked for (no action of the playbook moves the root): not judged.
    assert ec2_env.facts(target)["kms_key_access"] is None

    kms.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps({"Statement": []}))
    grants = ec2_env.denying("AccessDeniedException", "ListGrants")
    assert run_action("ec2.inspect", target, {"kms_access": True}, grants)[
        "kms_key_access"]["why"] == ("the key policy does not allow it, and whether a grant "
                                     "does could not be read (ListGrants refused): grant "
                                     "kms:ListGrants on the key")
    outage = ec2_env.denying("KMSInternalException", "GetKeyPolicy")
    assert run_action("ec2.inspect", target, {"kms_access": True}, outage)["kms_key_access"][
        "verdict"] == "unchecked"
    ec2_env.sandbox.clear_faults()
    kms.create_grant(KeyId=key, GranteePrincipal=caller, Operations=["CreateGrant", "Decrypt"])
    fresh = SyncRuntime(ec2_env.runtime.clients, ec2_env.clock)
    assert run_action("ec2.inspect", target, {"kms_access": True}, fresh)["kms_key_access"][
        "verdict"] == "allowed"


def test_kms_key_access_is_judged_for_the_role_the_run_attaches_as(ec2_env: Ec2Env) -> None:
    """On Step Functions the machine's role attaches: judged for it (its ARN as given, path
    included), not for the caller, and named in the fact."""
    target = ec2_env.target("hibernation")
    key = ec2_env.facts(target)["kms_key_id"]
    role = "arn:aws:iam::123456789012:role/service-role/remediate-sfn"
    ec2_env.sandbox.client("kms").put_key_policy(
        KeyId=key, PolicyName="default", Policy=json.dumps({"Statement": [{
            "Effect": "Allow", "Principal": {"AWS": role},
            "Action": ["kms:CreateGrant", "kms:Decrypt"], "Resource": "*"}]}))
    as_role = {"kms_access": True, "kms_principal": role,
               "kms_principal_role": "the state machine's role"}
    calls = ec2_env.calls("GetCallerIdentity", "sts")

    allowed = ec2_env.run("ec2.inspect", target, as_role)["kms_key_access"]
    caller = ec2_env.run("ec2.inspect", target, {"kms_access": True})["kms_key_access"]

    assert allowed == {"verdict": "allowed", "key": key, "principal": role, "actions": [],
                       "why": "", "role": "the state machine's role"}
    assert (caller["verdict"], caller["principal"]) == (
        "denied", ec2_env.sandbox.client("sts").get_caller_identity()["Arn"])
    assert "role" not in caller
    # The role is named: no GetCallerIdentity for it (one for the caller's judgement, and
    # ours just above).
    assert ec2_env.calls("GetCallerIdentity", "sts") - calls == 2
