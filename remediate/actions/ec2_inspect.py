"""``ec2.inspect``: the facts pre-flight learns about an EC2 instance, and how to read EC2 records.

Inspection runs for every target before any step, so it must be cheap at fleet
scale: the instance, volume and status records come from batched observes (one
Describe call for many targets), and answers many targets share (an instance
type's storage, a KMS key's state, the Region's Elastic IPs) are fetched once per
run through :class:`SharedAnswers`. Facts that only a missing permission hides
(stop protection, Spot request type, KMS key state) become ``None`` (unknown)
rather than failing the target.

The record readers and :func:`aws` at the top are shared by the other EC2 action
modules.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING, Any

from remediate.actions import rescue_image
from remediate.actions.contract import Action, Plan, PlannedCall, StepContext
from remediate.actions.registry import register
from remediate.actions.requests import ActionRun, AwsError, Call, Request, StepFailed, observe
from remediate.actions.shared_answers import SharedAnswers
from remediate.aws import apis
from remediate.aws.errors import ACCESS_DENIED_CODES
from remediate.aws.resources import instance_health
from remediate.kinds import KINDS
from remediate.language.schema import Bool, Field
from remediate.language.schema import Record as Schema

if TYPE_CHECKING:
    from remediate.export.fragment import AslStep, Fragment

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


def optional(call: Call) -> Steps:
    """Send ``call``; None when the caller may not make it (the fact is then unknown)."""
    try:
        return (yield call)
    except AwsError as exc:
        if exc.code in ACCESS_DENIED_CODES:
            return None
        raise StepFailed(f"{call.operation} failed: {exc}") from exc


def existing(resource: str, resource_id: str, what: str) -> Steps:
    """Observe a resource that must exist."""
    record = yield observe(resource, resource_id)
    if record is None:
        raise StepFailed(f"{what} {resource_id} not found")
    return record


# --- answers shared by many targets (remediate.actions.shared_answers) ---


def _instance_store(ctx: StepContext, instance_type: str) -> Steps:
    shared = ctx.service(SharedAnswers)

    def fetch() -> Steps:
        response = yield Call("ec2", "DescribeInstanceTypes", {"InstanceTypes": [instance_type]},
                              batch_key="InstanceTypes", note=f"storage of {instance_type}")
        # A merged call answers for other types too: keep them all.
        for info in response.get("InstanceTypes") or []:
            key = f"instance-store:{ctx.target.region}:{info['InstanceType']}"
            shared.answers[key] = bool(info.get("InstanceStorageSupported"))
        return shared.answers.get(f"instance-store:{ctx.target.region}:{instance_type}", False)

    return (yield from shared.ask(ctx, f"instance-store:{ctx.target.region}:{instance_type}",
                                  fetch))


def _kms_key_usable(ctx: StepContext, key_id: str) -> Steps:
    def fetch() -> Steps:
        try:
            response = yield Call("kms", "DescribeKey", {"KeyId": key_id})
        except AwsError as exc:
            if exc.code == "NotFoundException":
                return False
            return None  # no permission, or KMS unreachable: unknown, not "broken"
        return response.get("KeyMetadata", {}).get("KeyState") == "Enabled"

    return (yield from ctx.service(SharedAnswers).ask(
        ctx, f"kms-key:{ctx.target.region}:{key_id}", fetch))


def _elastic_ips(ctx: StepContext) -> Steps:
    def fetch() -> Steps:
        response = yield from optional(Call("ec2", "DescribeAddresses", {}))
        if response is None:
            return None
        return frozenset(a["PublicIp"] for a in response.get("Addresses") or [] if "PublicIp" in a)

    return (yield from ctx.service(SharedAnswers).ask(
        ctx, f"elastic-ips:{ctx.target.account}:{ctx.target.region}", fetch))


def _rescue_image_state(ctx: StepContext, image_id: str) -> Steps:
    """The rescue AMI's state in the target's Region, once per account and Region:
    ``not found`` when the Region has no such image, None when it cannot be read."""
    def fetch() -> Steps:
        response = yield from optional(Call(
            "ec2", "DescribeImages", {"Filters": [{"Name": "image-id", "Values": [image_id]}]},
            note=f"rescue image {image_id}"))
        if response is None:
            return None
        images = response.get("Images") or []
        return str(images[0].get("State") or "available") if images else "not found"

    return (yield from ctx.service(SharedAnswers).ask(
        ctx, f"rescue-image:{ctx.target.account}:{ctx.target.region}:{image_id}", fetch))


def _rescue_image(ctx: StepContext, image: str) -> Steps:
    """The rescue_image_id and rescue_image_state facts: the AMI ``image`` names in the
    target's Region (itself, or what its resolve:ssm: parameter holds there), and its
    state; the state says why when the parameter names no AMI (None: unknown)."""
    resolution = yield from rescue_image.resolve(ctx, image)
    if resolution.image_id is None:
        state = rescue_image.UNRESOLVED + resolution.problem if resolution.readable else None
        return {"rescue_image_id": None, "rescue_image_state": state}
    return {"rescue_image_id": resolution.image_id,
            "rescue_image_state": (yield from _rescue_image_state(ctx, resolution.image_id))}


def _spot_request_type(instance_id: str) -> Steps:
    response = yield from optional(Call(
        "ec2", "DescribeSpotInstanceRequests",
        {"Filters": [{"Name": "instance-id", "Values": [instance_id]}]}))
    for request in (response or {}).get("SpotInstanceRequests") or []:
        return request.get("Type")
    return None


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


def base_facts(ctx: StepContext, instance: Record, status: Record | None) -> dict[str, Any]:
    """The facts read straight from the instance and status records."""
    codes = [c.get("ProductCodeId", "") for c in instance.get("ProductCodes") or []]
    return {
        "id": ctx.target.id,
        "region": ctx.target.region,
        "account": ctx.target.account,
        "state": instance_state(instance),
        "status": instance_health(status),
        "tags": tag_map(instance),
        "availability_zone": (instance.get("Placement") or {}).get("AvailabilityZone"),
        "instance_type": instance.get("InstanceType"),
        "platform": "windows" if instance.get("Platform") == "windows" else "linux",
        "image_id": instance.get("ImageId"),
        "root_device_name": instance.get("RootDeviceName"),
        "lifecycle": instance.get("InstanceLifecycle") or "on-demand",
        "product_codes": codes,
        "hibernation": bool((instance.get("HibernationOptions") or {}).get("Configured")),
        "public_ip": instance.get("PublicIpAddress"),
    }


@register
class Inspect(Action):
    """Learn the facts pre-flight and playbooks need about one instance."""

    name = "ec2.inspect"
    summary = "read an instance's facts (root volume, Spot, storage, protection, KMS, status)"
    outputs = dict(KINDS["ec2-instance"].facts)
    permissions = iam("ec2:DescribeInstances", "ec2:DescribeInstanceStatus",
                      "ec2:DescribeVolumes", "ec2:DescribeInstanceAttribute",
                      "ec2:DescribeInstanceTypes", "ec2:DescribeSpotInstanceRequests",
                      "ec2:DescribeAddresses", "ec2:DescribeImages", "kms:DescribeKey",
                      "ssm:GetParameter")
    batches = batch_limits("ec2:DescribeInstanceTypes")
    verify = "read-only"
    params = Schema(fields={
        "stop_protection": Field(Bool(), default=True, description=(
            "read DisableApiStop: one DescribeInstanceAttribute per instance (AWS has no "
            "batch form), skipped when no action of the playbook stops the instance")),
        "rescue_image_id": Field(rescue_image.image_node(), description=(
            "the rescue AMI (or resolve:ssm:PARAMETER) to resolve and whose state to read, "
            "once per account and Region, when the playbook launches rescue instances")),
    })

    def inspect_params(self, risks: frozenset[str],
                       rescue_image_id: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"stop_protection": "stop-protection" in risks}
        if rescue_image_id and "rescue-image-unusable" in risks:
            params["rescue_image_id"] = rescue_image_id
        return params

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        return Plan(calls=planned("ec2:DescribeInstances", "ec2:DescribeInstanceStatus",
                                  "ec2:DescribeVolumes", "ec2:DescribeInstanceAttribute"))

    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        iid = ctx.target.id
        instance = yield from existing("instance", iid, "instance")
        status = yield observe("instance-status", iid)
        facts = base_facts(ctx, instance, status)
        yield from self._root_facts(ctx, instance, facts)
        facts["stop_protection"] = None  # unknown: not read, or not readable
        if params.get("stop_protection", True):
            attribute = yield from optional(Call(
                "ec2", "DescribeInstanceAttribute",
                {"InstanceId": iid, "Attribute": "disableApiStop"}))
            if attribute is not None:
                facts["stop_protection"] = bool(attribute.get("DisableApiStop", {}).get("Value"))
        facts["instance_store"] = yield from _instance_store(ctx, str(facts["instance_type"]))
        facts["spot_request_type"] = (
            (yield from _spot_request_type(iid)) if facts["lifecycle"] == "spot" else None)
        facts["has_elastic_ip"] = False
        if facts["public_ip"]:
            elastic = yield from _elastic_ips(ctx)
            facts["has_elastic_ip"] = None if elastic is None else facts["public_ip"] in elastic
        # Read only when the playbook launches rescue instances.
        facts["rescue_image_id"] = facts["rescue_image_state"] = None
        if params.get("rescue_image_id"):
            facts.update((yield from _rescue_image(ctx, str(params["rescue_image_id"]))))
        return facts

    def _root_facts(self, ctx: StepContext, instance: Record, facts: dict[str, Any]) -> Steps:
        mapping = root_mapping(instance)
        volume: Record | None = None
        if mapping is not None:
            facts["root_volume_id"] = mapping.get("VolumeId")
            facts["root_delete_on_termination"] = bool(mapping.get("DeleteOnTermination"))
            volume = yield observe("volume", str(mapping.get("VolumeId")))
        else:
            volume = yield from tagged_root_volume(ctx.target.id)
            tags = tag_map(volume or {})
            facts["root_volume_id"] = volume["VolumeId"] if volume else None
            facts["root_delete_on_termination"] = tags.get(ROOT_DOT_TAG) == "true"
            facts["root_device_name"] = tags.get(ROOT_DEVICE_TAG, facts["root_device_name"])
        facts["root_encrypted"] = bool(volume and volume.get("Encrypted"))
        facts["kms_key_id"] = volume.get("KmsKeyId") if volume else None
        facts["kms_key_usable"] = None  # no key to check (unencrypted), or unknown
        if facts["root_encrypted"] and facts["kms_key_id"]:
            facts["kms_key_usable"] = yield from _kms_key_usable(ctx, str(facts["kms_key_id"]))

    def asl(self, step: AslStep) -> Fragment:
        from remediate.export.fragments import ec2_instance

        return ec2_instance.inspect(step)
