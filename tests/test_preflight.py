from __future__ import annotations

from typing import Any

import pytest

from remediate.findings import FINDINGS, Finding
from remediate.preflight import RULES, destructive_findings, findings_for, gate

# A healthy-looking, harmless Windows instance: no findings at all.
CLEAN: dict[str, Any] = {
    "id": "i-0abc",
    "region": "us-east-1",
    "account": "default",
    "state": "running",
    "status": "impaired",
    "tags": {},
    "availability_zone": "us-east-1a",
    "instance_type": "m5.large",
    "platform": "windows",
    "image_id": "ami-0target",
    "root_device_name": "/dev/sda1",
    "root_volume_id": "vol-0root",
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
    "public_ip": None,
    "has_elastic_ip": False,
}


def kinds(facts: dict[str, Any], rescue: str | None = None) -> list[str]:
    return [f.kind for f in findings_for("ec2-instance", facts, rescue)]


def only(facts: dict[str, Any], rescue: str | None = None) -> Finding:
    found = findings_for("ec2-instance", facts, rescue)
    assert len(found) == 1, found
    return found[0]


def test_a_clean_target_has_no_findings() -> None:
    assert findings_for("ec2-instance", CLEAN) == []


def test_every_rule_is_a_known_finding_kind() -> None:
    for rules in RULES.values():
        assert set(rules) <= set(FINDINGS)


@pytest.mark.parametrize(("change", "expected"), [
    ({"instance_store": True, "instance_type": "m5d.large"}, Finding(
        "instance-store-data-loss",
        "i-0abc is a m5d.large, whose instance-store volumes are erased when it stops")),
    ({"lifecycle": "spot", "spot_request_type": "one-time"}, Finding(
        "spot-one-time", "i-0abc is a one-time Spot instance: StopInstances is refused for it")),
    ({"lifecycle": "spot", "spot_request_type": "persistent"}, Finding(
        "spot-persistent", "i-0abc is a persistent Spot instance: started without its root "
        "volume, EC2 terminates it")),
    ({"lifecycle": "spot", "spot_request_type": None}, Finding(
        "spot-persistent", "i-0abc is a Spot instance whose request type could not be read; "
        "treated as persistent (started without its root volume, EC2 terminates it)")),
    ({"stop_protection": True}, Finding(
        "stop-protection", "i-0abc has DisableApiStop set, so StopInstances is refused")),
    ({"root_encrypted": True, "kms_key_id": "arn:aws:kms:us-east-1:1:key/k",
      "kms_key_usable": False}, Finding(
        "kms-key-unusable", "root volume vol-0root of i-0abc is encrypted with KMS key "
        "arn:aws:kms:us-east-1:1:key/k, which is not enabled (disabled, pending deletion or "
        "missing): the instance would not start again")),
    ({"product_codes": ["abc123", "def456"]}, Finding(
        "marketplace-product-code", "i-0abc carries Marketplace product code(s) abc123, "
        "def456: its root volume vol-0root may not attach to another instance")),
    ({"hibernation": True}, Finding("hibernation-enabled", "i-0abc has hibernation configured")),
    ({"public_ip": "54.1.2.3", "has_elastic_ip": False}, Finding(
        "public-ip-will-change", "i-0abc's public IPv4 address 54.1.2.3 is not an Elastic IP: "
        "it changes when the instance stops and starts")),
    ({"platform": "linux"}, Finding("not-windows", "i-0abc runs linux, not Windows")),
    ({"platform": None}, Finding("not-windows", "i-0abc runs an unknown platform, not Windows")),
    ({"status": "ok"}, Finding("already-healthy", "i-0abc passes its status checks already")),
])
def test_each_finding_names_the_targets_values(change: dict[str, Any], expected: Finding) -> None:
    assert only({**CLEAN, **change}) == expected


def test_same_ami_rescue_compares_the_rescue_image_with_the_targets() -> None:
    assert only(CLEAN, rescue="ami-0target") == Finding(
        "same-ami-rescue", "i-0abc runs ami-0target, the same AMI the rescue instance would "
        "run: the disks' signatures collide")
    assert kinds(CLEAN, rescue="ami-0other") == []
    assert kinds(CLEAN, rescue=None) == []


PARAMETER = "resolve:ssm:/aws/service/ami-windows-latest/Windows_Server-2019-English-Full-Base"


def test_same_ami_rescue_compares_the_image_a_parameter_resolved_to() -> None:
    resolved = {**CLEAN, "rescue_image_id": "ami-0target", "rescue_image_state": "available"}
    assert only(resolved, rescue=PARAMETER) == Finding(
        "same-ami-rescue", f"i-0abc runs ami-0target, the same AMI the rescue instance would "
        f"run ({PARAMETER}): the disks' signatures collide")
    assert kinds({**resolved, "rescue_image_id": "ami-0other"}, rescue=PARAMETER) == []
    assert kinds(CLEAN, rescue=PARAMETER) == []  # not resolved: nothing to compare


@pytest.mark.parametrize(("image", "change", "detail"), [
    ("ami-0gone", {"rescue_image_id": "ami-0gone", "rescue_image_state": "not found"},
     "rescue image ami-0gone does not exist in us-east-1: no rescue instance for i-0abc"),
    ("ami-0new", {"rescue_image_id": "ami-0new", "rescue_image_state": "pending"},
     "rescue image ami-0new is pending in us-east-1: no rescue instance for i-0abc"),
    (PARAMETER, {"rescue_image_id": "ami-0gone", "rescue_image_state": "not found"},
     f"rescue image ami-0gone ({PARAMETER}) does not exist in us-east-1: no rescue instance "
     "for i-0abc"),
    ("resolve:ssm:/x", {"rescue_image_id": None,
                        "rescue_image_state": "unresolved: SSM parameter /x does not exist"},
     "rescue image resolve:ssm:/x does not resolve in us-east-1 (SSM parameter /x does not "
     "exist): no rescue instance for i-0abc"),
])
def test_an_unusable_rescue_image_says_what_is_missing_where(
        image: str, change: dict[str, Any], detail: str) -> None:
    assert only({**CLEAN, **change}, rescue=image) == Finding("rescue-image-unusable", detail)


@pytest.mark.parametrize("change", [
    {"lifecycle": "on-demand", "spot_request_type": "one-time"},  # not Spot: type is moot
    {"root_encrypted": True, "kms_key_usable": None},  # unknown is not "unusable"
    {"root_encrypted": True, "kms_key_usable": True},
    {"root_encrypted": False, "kms_key_usable": False},
    {"public_ip": "54.1.2.3", "has_elastic_ip": True},
    {"public_ip": "54.1.2.3", "has_elastic_ip": None},  # unknown: not reported as changing
    {"stop_protection": None},
    {"status": "initializing"},
])
def test_facts_that_are_no_finding(change: dict[str, Any]) -> None:
    assert kinds({**CLEAN, **change}) == []


SETTING = ("arn:aws:ssm:us-east-1:123456789012:servicesetting/ssm/managed-instance/"
           "default-ec2-instance-management-role")


@pytest.mark.parametrize(("rescue_ssm", "expected"), [
    (f"none: {SETTING}", Finding("rescue-unmanageable", (
        "rescue instances in default/us-east-1 (account 123456789012) would never be managed "
        "by SSM: no rescue_instance_profile, and Default Host Management Configuration is off "
        "there; the repair could not run and each target would wait the ready timeout: no "
        "rescue instance could repair i-0abc"))),
    ("unknown: GetServiceSetting: AccessDeniedException: no; grant ...",
     Finding("rescue-ssm-unchecked", (
         "could not check that rescue instances in default/us-east-1 would be managed by SSM "
         "(Default Host Management Configuration): GetServiceSetting: "
         "AccessDeniedException: no; grant ..."))),
])
def test_rescue_instances_ssm_could_not_manage(rescue_ssm: str, expected: Finding) -> None:
    assert only({**CLEAN, "rescue_ssm": rescue_ssm}) == expected


@pytest.mark.parametrize("rescue_ssm", [
    None, "dhmc: service-role/AWSSystemsManagerDefaultEC2InstanceManagementRole",
    "instance-profile: rescue-ssm"])
def test_rescue_instances_ssm_manages_are_no_finding(rescue_ssm: str | None) -> None:
    assert kinds({**CLEAN, "rescue_ssm": rescue_ssm}) == []


def test_findings_come_in_rule_order() -> None:
    facts = {**CLEAN, "instance_store": True, "stop_protection": True, "status": "ok",
             "platform": "linux"}
    assert kinds(facts) == ["stop-protection", "instance-store-data-loss", "not-windows",
                            "already-healthy"]


def test_workspaces_and_unknown_kinds_have_no_ec2_findings() -> None:
    assert findings_for("workspace", {**CLEAN, "stop_protection": True}) == []
    assert findings_for("no-such-kind", CLEAN) == []


@pytest.mark.parametrize("state", ["UNHEALTHY", "STOPPED", "ERROR", "REBOOTING", None])
def test_an_available_workspace_is_already_healthy(state: str | None) -> None:
    """AVAILABLE is WorkSpaces' own verdict: running, and passing its health checks."""
    workspace = {"id": "ws-0abc", "state": "AVAILABLE"}
    assert findings_for("workspace", workspace) == [Finding(
        "already-healthy", "ws-0abc is AVAILABLE: it passes WorkSpaces' health checks already")]
    assert findings_for("workspace", {**workspace, "state": state}) == []


def test_destructive_findings_name_the_target() -> None:
    assert destructive_findings(["root-replacement-data-loss"], CLEAN) == [Finding(
        "root-replacement-data-loss",
        "i-0abc: replacing the root volume discards what was written after the chosen snapshot")]
    assert destructive_findings([], CLEAN) == []


# --- gate ---

BLOCK = Finding("stop-protection", "i-0abc has DisableApiStop set")
ACK = Finding("instance-store-data-loss", "i-0abc is a m5d.large")
ACK2 = Finding("spot-persistent", "i-0abc is a persistent Spot instance")
INFO = Finding("public-ip-will-change", "i-0abc's address changes")
ALL = {"stop-protection", "instance-store-data-loss", "spot-persistent", "public-ip-will-change"}
BLOCK_TEXT = ("blocked by stop-protection: i-0abc has DisableApiStop set (hint: turn it off "
              "first: aws ec2 modify-instance-attribute --no-disable-api-stop)")
ACK_TEXT = ("instance-store-data-loss not accepted (--accept instance-store-data-loss): "
            "i-0abc is a m5d.large")


def test_gate_lets_a_target_without_findings_go_on() -> None:
    assert gate([], ALL, set(), set()) is None


def test_gate_ignores_info_findings() -> None:
    assert gate([INFO], ALL, set(), set()) is None


def test_gate_refuses_a_blocking_finding_whatever_is_accepted() -> None:
    assert gate([BLOCK], ALL, set(), set()) == BLOCK_TEXT
    assert gate([BLOCK], ALL, {"stop-protection"}, set()) == BLOCK_TEXT


def test_gate_refuses_an_ack_finding_until_accepted() -> None:
    assert gate([ACK], ALL, set(), set()) == ACK_TEXT
    assert gate([ACK], ALL, {"spot-persistent"}, set()) == ACK_TEXT
    assert gate([ACK], ALL, {"instance-store-data-loss"}, set()) is None


def test_gate_ignores_findings_no_action_of_the_playbook_risks() -> None:
    assert gate([BLOCK, ACK, INFO], set(), set(), set()) is None
    assert gate([BLOCK, ACK], {"instance-store-data-loss"}, set(), set()) == ACK_TEXT


def test_require_ack_makes_an_info_finding_need_acceptance() -> None:
    needs = {"public-ip-will-change"}
    assert gate([INFO], ALL, set(), needs) == (
        "public-ip-will-change not accepted (--accept public-ip-will-change): "
        "i-0abc's address changes")
    assert gate([INFO], ALL, {"public-ip-will-change"}, needs) is None
    # Requiring a kind that was not found refuses nothing.
    assert gate([], ALL, set(), needs) is None
    # ... and a required kind that no action risks is still irrelevant.
    assert gate([INFO], set(), set(), needs) is None


def test_require_ack_does_not_soften_a_blocking_finding() -> None:
    assert gate([BLOCK], ALL, {"stop-protection"}, {"stop-protection"}) == BLOCK_TEXT


def test_gate_lists_every_reason_blocking_first() -> None:
    assert gate([ACK, INFO, BLOCK, ACK2], ALL, set(), set()) == "; ".join([
        BLOCK_TEXT, ACK_TEXT,
        "spot-persistent not accepted (--accept spot-persistent): "
        "i-0abc is a persistent Spot instance"])
    assert gate([ACK, BLOCK, ACK2], ALL, {"instance-store-data-loss", "spot-persistent"},
                set()) == BLOCK_TEXT


def test_gate_handles_destructive_findings_like_ack_findings() -> None:
    found = destructive_findings(["root-replacement-data-loss"], CLEAN)
    relevant = {"root-replacement-data-loss"}
    assert gate(found, relevant, set(), set()) == (
        "root-replacement-data-loss not accepted (--accept root-replacement-data-loss): "
        "i-0abc: replacing the root volume discards what was written after the chosen snapshot")
    assert gate(found, relevant, {"root-replacement-data-loss"}, set()) is None


def test_gate_over_every_finding_kind_and_acceptance() -> None:
    """Exhaustive: each kind, relevant or not, accepted or not, required or not."""
    for kind, info in FINDINGS.items():
        finding = Finding(kind, "detail")
        for relevant in (set(), {kind}):
            for accepted in (set(), {kind}):
                for required in (set(), {kind}):
                    verdict = gate([finding], relevant, accepted, required)
                    refused = bool(relevant) and (
                        info.severity == "block"
                        or ((info.severity == "ack" or bool(required)) and not accepted))
                    assert (verdict is not None) == refused, (kind, relevant, accepted, required)


KEY = "arn:aws:kms:us-east-1:123456789012:key/k1"
ENCRYPTED = {**CLEAN, "root_encrypted": True, "kms_key_id": KEY, "kms_key_usable": True}


@pytest.mark.parametrize(("access", "expected"), [
    ({"verdict": "denied", "key": KEY, "principal": "arn:aws:iam::123456789012:role/op",
      "actions": ["kms:Decrypt"], "why": "a Deny statement of the key policy refuses it"},
     Finding("kms-key-denied", (
         f"root volume vol-0root of i-0abc is encrypted with KMS key {KEY}, which "
         "arn:aws:iam::123456789012:role/op may not use through EC2 (kms:Decrypt: a Deny "
         "statement of the key policy refuses it), so it could not be attached to a rescue "
         "instance: remove that Deny for it"))),
    ({"verdict": "unchecked", "key": KEY, "principal": "", "actions": [],
      "why": "STS GetCallerIdentity did not say who the caller is"},
     Finding("kms-key-unchecked", (
         f"could not check that the operator may use KMS key {KEY} through EC2: STS "
         "GetCallerIdentity did not say who the caller is"))),
])
def test_a_key_the_operator_may_not_use_or_that_could_not_be_judged(
        access: dict[str, Any], expected: Finding) -> None:
    assert only({**ENCRYPTED, "kms_key_access": access}) == expected


@pytest.mark.parametrize("access", [
    None, {"verdict": "allowed", "key": KEY}, "not a fact"])
def test_a_usable_or_unjudged_key_is_no_finding(access: Any) -> None:
    assert kinds({**ENCRYPTED, "kms_key_access": access}) == []
