"""``ec2.inspect``: the facts pre-flight learns about an EC2 instance, and how to read EC2 records.

Inspection runs for every target before any step, so it must be cheap at fleet
scale: the instance, volume and status records come from batched reads (one
Describe call for many targets), and answers many targets share (an instance
type's storage, a KMS key's state, the Region's Elastic IPs, the rescue image) are
fetched once per run (:mod:`remediate.actions.shared_facts`). Facts that only a
missing permission hides (stop protection, Spot request type, KMS key state, Elastic
IP) become ``None`` (unknown) rather than failing the target.

It is a program (:mod:`remediate.actions.program`), so a Step Functions iteration
learns the same facts with the same steps; there each shared answer is asked for the
target alone, and the rescue image facts are not read (:data:`LOCAL_ONLY_FACTS`).

The record readers and :func:`aws` at the top are shared by the other EC2 action
modules.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any, Final

from remediate.actions import instance_flows as flows
from remediate.actions import kms_access, manageability, rescue_image
from remediate.actions.contract import Plan, PlannedCall, StepContext
from remediate.actions.list_flows import joined, tag, tag_mapping
from remediate.actions.program import (
    TARGET_ID,
    All,
    AtLeast,
    Count,
    Done,
    Eq,
    Exists,
    Expr,
    Fail,
    Fmt,
    Get,
    If,
    Not,
    OnError,
    Program,
    Read,
    Seq,
    Set,
    Var,
    flag,
    program,
)
from remediate.actions.programmed import ProgramAction
from remediate.actions.registry import register
from remediate.actions.requests import AwsError, Call, Request, StepFailed, observe
from remediate.actions.shared_answers import SharedAnswers as SharedAnswers
from remediate.actions.shared_facts import (
    DENIED,
    elastic_ip,
    instance_store,
    kms_key_access,
    kms_key_usable,
    rescue_image_facts,
    rescue_ssm_facts,
)
from remediate.aws import apis
from remediate.aws.principal import Attacher
from remediate.kinds import KINDS
from remediate.language.schema import Bool, Field, Str
from remediate.language.schema import Record as Schema

Record = Mapping[str, Any]
Steps = Generator[Request, Any, Any]

# Tags ec2.detach_root puts on a root volume before detaching it, so a volume left
# detached (or on a rescue instance) after a crash still says whose root it is.
ROOT_OF_TAG = "remediate:root-of"
ROOT_DEVICE_TAG = "remediate:root-device"
ROOT_DOT_TAG = "remediate:delete-on-termination"


# --- contract helpers: one source (remediate.aws.apis) for IAM names and batch limits ---


def _operation(api: str) -> apis.Operation:
    service, name = api.split(":", 1)
    return apis.operation(service, name)


def iam(*api_names: str) -> tuple[str, ...]:
    """IAM actions for ``service:Operation`` names."""
    return tuple(_operation(api).iam_action for api in api_names)


def batch_limits(*api_names: str) -> dict[str, int]:
    """``{"ec2:StopInstances": 1000}``: how many ids AWS takes per merged call."""
    return {api: _operation(api).batch_limit for api in api_names}


def planned(*api_names: str, note: str = "") -> tuple[PlannedCall, ...]:
    """Planned calls, mutating or not as remediate.aws.apis says."""
    return tuple(PlannedCall(api, _operation(api).mutating, note) for api in api_names)


# --- reading EC2 records ---


def device_mapping(instance: Record, device: str | None) -> Record | None:
    """The ``Ebs`` part of the instance's block device at ``device``, if one is attached."""
    for mapping in instance.get("BlockDeviceMappings") or []:
        if device is not None and mapping.get("DeviceName") == device:
            ebs: Record = mapping.get("Ebs") or {}
            return ebs
    return None


def root_mapping(instance: Record) -> Record | None:
    return device_mapping(instance, instance.get("RootDeviceName"))


def attachment(volume: Record) -> Record | None:
    """A volume's attachment (root volumes are never multi-attach), or None if detached."""
    attachments = volume.get("Attachments") or []
    return attachments[0] if attachments else None


def instance_state(instance: Record) -> str:
    return str((instance.get("State") or {}).get("Name", "unknown"))


def own_entry(response: Record, key: str, instance_id: str) -> Record | None:
    """This target's entry in a (possibly merged) batched response."""
    for entry in response.get(key) or []:
        if entry.get("InstanceId") == instance_id:
            return dict(entry)
    return None


def tag_map(record: Record) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in record.get("Tags") or []}


# --- requests with human errors ---


def aws(call: Call, subject: str) -> Steps:
    """Send ``call``; an AWS error fails the step, naming the call and what it was about."""
    try:
        return (yield call)
    except AwsError as exc:
        raise StepFailed(f"{call.operation} for {subject} failed: {exc}") from exc


def existing(resource: str, resource_id: str, what: str) -> Steps:
    """Observe a resource that must exist."""
    record = yield observe(resource, resource_id)
    if record is None:
        raise StepFailed(f"{what} {resource_id} not found")
    return record


def tagged_root_volume(instance_id: str) -> Steps:
    """The volume ec2.detach_root tagged as this instance's root, or None.

    Used when the instance has nothing at its root device (the root volume was
    detached, perhaps by a run that crashed).
    """
    response = yield from aws(Call("ec2", "DescribeVolumes", {
        "Filters": [{"Name": f"tag:{ROOT_OF_TAG}", "Values": [instance_id]}]}),
        f"the root volume of {instance_id}")
    volumes = list(response.get("Volumes") or [])
    if len(volumes) > 1:
        ids = ", ".join(sorted(v["VolumeId"] for v in volumes))
        raise StepFailed(f"{instance_id} has no root volume attached and {len(volumes)} "
                         f"volumes are tagged {ROOT_OF_TAG}={instance_id} ({ids}); "
                         "say which one with volume_id")
    return volumes[0] if volumes else None


# --- the action ---


INSTANCE = Var("vars.instance")
# Facts a Step Functions iteration does not read (None there); see shared_facts.
LOCAL_ONLY_FACTS: Final = ("rescue_image_id", "rescue_image_state", "rescue_ssm",
                            "kms_key_access")
STEPFUNCTIONS_FACTS: Final = tuple(f for f in KINDS["ec2-instance"].facts
                                   if f not in LOCAL_ONLY_FACTS)


def _or(into: str, value: Var, default: Expr) -> If:
    """``vars.<into>``: ``value``, or ``default`` when it is absent."""
    return If(((Exists(value), (Set(into, value),)),), orelse=(Set(into, default),))


def _instance_facts() -> Seq:
    """The facts read straight from the instance record."""
    i = INSTANCE
    return (Set("state", i.State.Name),
            Set("availability_zone", i.Placement.AvailabilityZone),
            Set("instance_type", i.InstanceType),
            If(((Eq(i.Platform, "windows"), (Set("platform", "windows"),)),),
               orelse=(Set("platform", "linux"),)),
            Set("image_id", i.ImageId),
            Set("root_device_name", i.RootDeviceName),
            _or("lifecycle", i.InstanceLifecycle, "on-demand"),
            If(((Exists(i.ProductCodes), (
                Set("product_codes", Var("vars.instance.ProductCodes[*].ProductCodeId")),)),),
               orelse=(Set("product_codes", []),)),
            flag("hibernation", Eq(i.HibernationOptions.Configured, True)),
            Set("public_ip", i.PublicIpAddress),
            *tag_mapping("tags", i))


def _tagged_root() -> Seq:
    """No volume at the root device: the volume ec2.detach_root tagged as this instance's
    root (perhaps left detached by a run that crashed), if any."""
    volumes, count, volume = Var("vars.tagged.volumes"), Var("vars.tagged_count"), Var(
        "vars.volume")
    return (Get("tagged", "ec2", "DescribeVolumes", {"Filters": [
                {"Name": f"tag:{ROOT_OF_TAG}", "Values": [TARGET_ID]}]},
                pick={"volumes": "Volumes[*]"}),
            Set("tagged_count", Count(volumes)),
            If(((AtLeast(count, 2), (
                *joined("tagged_ids", volumes, lambda v: v.VolumeId),
                Fail(Fmt(TARGET_ID, " has no root volume attached and ", count,
                         f" volumes are tagged {ROOT_OF_TAG}=", TARGET_ID, " (",
                         Var("vars.tagged_ids"), "); say which one with volume_id")))),)),
            Set("volume", volumes.at(0)),
            Set("root_volume_id", volume.VolumeId),
            *tag("dot_tag", volume, ROOT_DOT_TAG),
            flag("root_delete_on_termination", Eq(Var("vars.dot_tag"), "true")),
            *tag("device_tag", volume, ROOT_DEVICE_TAG),
            If(((Exists(Var("vars.device_tag")),
                 (Set("root_device_name", Var("vars.device_tag")),)),)))


def _root_facts(access: bool, attacher: Attacher | None) -> Seq:
    """The root volume (the one at the root device, else the tagged one) and its key; with
    ``access``, whether the identity attaching it (``attacher``, else the caller) may use
    an enabled key through EC2."""
    mapping, volume, key = Var("vars.root_mapping"), Var("vars.volume"), Var("vars.kms_key_id")
    return (*flows.root_mapping("root_mapping", INSTANCE),
            If(((Exists(mapping), (
                Set("root_volume_id", mapping.Ebs.VolumeId),
                flag("root_delete_on_termination", Eq(mapping.Ebs.DeleteOnTermination, True)),
                Read("volume", "volume", Var("vars.root_volume_id")))),),
               orelse=_tagged_root()),
            flag("root_encrypted", Eq(volume.Encrypted, True)),
            Set("kms_key_id", volume.KmsKeyId),
            Set("kms_key_usable", None),  # no key to check (unencrypted), or unknown
            If(((All(Eq(Var("vars.root_encrypted"), True), Exists(key)), (
                kms_key_usable("kms", key), Set("kms_key_usable", Var("vars.kms.usable")))),)),
            *_kms_key_access(access, attacher))


def _kms_key_access(read: bool, attacher: Attacher | None) -> Seq:
    """Read only when the playbook moves the root volume, and the key is not known bad."""
    if not read:
        return (Set("kms_key_access", None),)
    key = Var("vars.kms_key_id")
    return (Set("kms_key_access", None),
            If(((All(Eq(Var("vars.root_encrypted"), True), Exists(key),
                     Not(Eq(Var("vars.kms_key_usable"), False))), (
                kms_key_access("kms_access", key, attacher),
                Set("kms_key_access", Var("vars.kms_access.fact")))),)))


def _stop_protection(read: bool) -> Seq:
    """DisableApiStop: one DescribeInstanceAttribute per instance (no batch form)."""
    if not read:
        return (Set("stop_protection", None),)
    return (Set("stop_protection", None),  # unknown: not readable
            Get("stop", "ec2", "DescribeInstanceAttribute",
                {"InstanceId": TARGET_ID, "Attribute": "disableApiStop"},
                pick={"value": "DisableApiStop.Value"}, on_error=(OnError(DENIED, ()),)),
            If(((Exists(Var("vars.stop")),
                 (flag("stop_protection", Eq(Var("vars.stop.value"), True)),)),)))


def _spot_request_type() -> Seq:
    return (Set("spot_request_type", None),
            If(((Eq(Var("vars.lifecycle"), "spot"), (
                Get("spot", "ec2", "DescribeSpotInstanceRequests",
                    {"Filters": [{"Name": "instance-id", "Values": [TARGET_ID]}]},
                    pick={"types": "SpotInstanceRequests[*].Type"},
                    on_error=(OnError(DENIED, ()),)),
                Set("spot_request_type", Var("vars.spot.types").at(0)))),)))


def _elastic_ip() -> Seq:
    public_ip = Var("vars.public_ip")
    return (Set("has_elastic_ip", False),
            If(((Exists(public_ip), (elastic_ip("eip", public_ip),
                                     Set("has_elastic_ip", Var("vars.eip.elastic")))),)))


def _rescue_image(image: str | None) -> Seq:
    """Read only when the playbook launches rescue instances."""
    unread = (Set("rescue_image_id", None), Set("rescue_image_state", None))
    if not image:
        return unread
    return (rescue_image_facts("rescue", image),
            Set("rescue_image_id", Var("vars.rescue.image_id")),
            Set("rescue_image_state", Var("vars.rescue.state")))


def _rescue_ssm(check: bool, profile: str | None) -> Seq:
    """Read only when the playbook launches rescue instances."""
    if not check:
        return (Set("rescue_ssm", None),)
    return (rescue_ssm_facts("rescue_ssm_read", profile),
            Set("rescue_ssm", Var("vars.rescue_ssm_read.fact")))


def _attacher(params: Mapping[str, Any]) -> Attacher | None:
    """The role whose key access is judged (None: the caller)."""
    arn = params.get("kms_principal")
    return Attacher(str(arn), str(params.get("kms_principal_role") or "the role")) if arn else None


@register
class Inspect(ProgramAction):
    """Learn the facts pre-flight and playbooks need about one instance."""

    name = "ec2.inspect"
    summary = "read an instance's facts (root volume, Spot, storage, protection, KMS, status)"
    outputs = dict(KINDS["ec2-instance"].facts)
    permissions = iam("ec2:DescribeInstances", "ec2:DescribeInstanceStatus",
                      "ec2:DescribeVolumes", "ec2:DescribeInstanceAttribute",
                      "ec2:DescribeInstanceTypes", "ec2:DescribeSpotInstanceRequests",
                      "ec2:DescribeAddresses", "ec2:DescribeImages", "kms:DescribeKey",
                      "ssm:GetParameter", "ssm:GetServiceSetting", *kms_access.READS)
    scoped_permissions = (manageability.GRANT, *kms_access.GRANTS)
    batches = batch_limits("ec2:DescribeInstanceTypes")
    verify = "read-only"
    params = Schema(fields={
        "stop_protection": Field(Bool(), default=True, description=(
            "read DisableApiStop: one DescribeInstanceAttribute per instance (AWS has no "
            "batch form), skipped when no action of the playbook stops the instance")),
        "rescue_image_id": Field(rescue_image.image_node(), description=(
            "the rescue AMI (or resolve:ssm:PARAMETER) to resolve and whose state to read, "
            "once per account and Region, when the playbook launches rescue instances")),
        "rescue_ssm": Field(Bool(), default=False, description=(
            "read whether rescue instances would be SSM-managed (an instance profile, or "
            "Default Host Management Configuration), once per account and Region")),
        "kms_access": Field(Bool(), default=False, description=(
            "judge whether the caller may use an encrypted root's KMS key through EC2 (key "
            "policy and grants), once per account, Region and key")),
        "kms_principal": Field(Str(max_len=2048), description=(
            "the role ARN (with its path) that will call AttachVolume, whose key access is "
            "judged (none: the caller, as STS GetCallerIdentity names it)")),
        "kms_principal_role": Field(Str(max_len=200), description=(
            "what kms_principal is to the run, for messages (\"the state machine's role\")")),
        "rescue_instance_profile": Field(Str(max_len=2048), description=(
            "the instance profile rescue instances are launched with (none: DHMC decides)")),
    })

    def inspect_params(self, risks: frozenset[str], rescue_image_id: str | None = None,
                       rescue_instance_profile: str | None = None,
                       attacher: Attacher | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"stop_protection": "stop-protection" in risks}
        if "kms-key-denied" in risks:
            params["kms_access"] = True
            if attacher is not None:
                params["kms_principal"], params["kms_principal_role"] = (attacher.arn,
                                                                         attacher.role)
        if rescue_image_id and "rescue-image-unusable" in risks:
            params["rescue_image_id"] = rescue_image_id
        if rescue_image_id and "rescue-unmanageable" in risks:
            params["rescue_ssm"] = True
            if rescue_instance_profile:
                params["rescue_instance_profile"] = rescue_instance_profile
        return params

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        return Plan(calls=planned("ec2:DescribeInstances", "ec2:DescribeInstanceStatus",
                                  "ec2:DescribeVolumes", "ec2:DescribeInstanceAttribute"))

    def program(self, params: Mapping[str, Any]) -> Program:
        image = params.get("rescue_image_id")
        return program(
            *flows.read_instance("instance", TARGET_ID),
            Read("status", "instance-status", TARGET_ID),
            *_instance_facts(),
            *flows.health("status_word", Var("vars.status")),
            *_root_facts(bool(params.get("kms_access")), _attacher(params)),
            *_stop_protection(bool(params.get("stop_protection", True))),
            instance_store("store", INSTANCE.InstanceType),
            Set("instance_store", Var("vars.store.supported")),
            *_spot_request_type(),
            *_elastic_ip(),
            *_rescue_image(str(image) if image else None),
            *_rescue_ssm(bool(params.get("rescue_ssm")), params.get("rescue_instance_profile")),
            Done({"id": TARGET_ID, "region": Var("target.region"),
                  "account": Var("target.account"), "status": Var("vars.status_word"),
                  **{fact: Var(f"vars.{fact}") for fact in KINDS["ec2-instance"].facts
                     if fact not in ("id", "region", "account", "status")}}))
