"""What a request authorizes in IAM terms: each resource, and the context it is judged in.

From the Service Authorization Reference's "Resource types" column
(https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html,
list_awssystemsmanager.html, list_amazonworkspaces.html): AttachVolume and
DetachVolume authorize the volume and the instance; CreateSnapshot the volume and
the new snapshot; RunInstances the new instance, volume and network interface
(with the tags the request gives each, ``aws:RequestTag``), the image, subnet and
security groups; CreateReplaceRootVolumeTask the instance, the new task and
volume, and the image or snapshot it restores from; ModifyInstanceAttribute the
instance, the volumes of the block-device mappings it changes and the security
groups it sets, with ``ec2:Attribute/NAME`` for each attribute it sets; SendCommand
the document and each instance; the WorkSpaces recovery calls each WorkSpace;
DeleteVolume and DeleteSnapshot what they delete. Tags
given at creation also authorize ``ec2:CreateTags`` (``ec2:CreateAction``), and an
instance profile ``iam:PassRole`` on its role (``iam:PassedToService``). Existing
resources carry their tags as ``aws:ResourceTag/KEY``. An operation not listed
here is judged on ``*``, as AWS does for actions without resource-level
permissions (Describe, Get, List, and WorkSpaces' CreateTags/DeleteTags).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from remediate.sandbox.iam_eval import Authorization
from remediate.sandbox.state import current

Params = Mapping[str, Any]
Context = dict[str, tuple[str, ...]]
# moto's service name -> the service's prefix in IAM actions.
IAM_PREFIXES: Final = {"stepfunctions": "states"}
# Request parameters of ModifyInstanceAttribute that are not an attribute it sets.
_NOT_ATTRIBUTES: Final = frozenset({"InstanceId", "DryRun", "Attribute", "Value",
                                    "BlockDeviceMappings", "Groups", "EnclaveOptions"})


class Request:
    """One moto request: its parameters, and the resources it names with their tags."""

    def __init__(self, response: Any, service: str, operation: str) -> None:
        self.response = response
        self.service = service
        self.operation = operation
        self.region: str = response.region
        self.account: str = response.current_account
        self.params: Params = _params(response)

    @property
    def action(self) -> str:
        return f"{IAM_PREFIXES.get(self.service, self.service)}:{self.operation}"

    def ec2(self) -> Any:
        from moto.ec2.models import ec2_backends

        return ec2_backends[self.account][self.region]

    def ec2_arn(self, kind: str, resource_id: str = "*") -> str:
        account = "" if kind in ("image", "snapshot") else self.account
        return f"arn:aws:ec2:{self.region}:{account}:{kind}/{resource_id}"

    def ec2_tags(self, resource_id: str) -> dict[str, str]:
        return dict(self.ec2().tags.get(resource_id, {}))

    def existing(self, kind: str, resource_id: str, action: str | None = None,
                 context: Context | None = None) -> Authorization:
        """An EC2 resource that exists: judged with its tags."""
        return Authorization(action or self.action, self.ec2_arn(kind, resource_id),
                             {**(context or {}), **resource_tags(self.ec2_tags(resource_id))})

    def created(self, kind: str, tags: Mapping[str, str], action: str | None = None,
                context: Context | None = None) -> Authorization:
        """An EC2 resource the request creates: judged with the tags it asks for."""
        return Authorization(action or self.action, self.ec2_arn(kind),
                             {**(context or {}), **request_tags(tags)})


def authorizations(response: Any, service: str, operation: str) -> list[Authorization]:
    """Every resource ``operation`` authorizes, with its context (``*`` if none)."""
    request = Request(response, service, operation)
    handler = _HANDLERS.get((service, operation))
    if handler is None:
        return [Authorization(request.action, "*", _tag_keys_context(request))]
    return handler(request)


def resource_tags(tags: Mapping[str, str]) -> Context:
    return {f"aws:ResourceTag/{k}": (v,) for k, v in tags.items()}


def request_tags(tags: Mapping[str, str]) -> Context:
    context: Context = {f"aws:RequestTag/{k}": (v,) for k, v in tags.items()}
    if tags:
        context["aws:TagKeys"] = tuple(tags)
    return context


def _params(response: Any) -> Params:
    if getattr(response, "automated_parameter_parsing", False):
        return dict(response.params)
    try:
        body = json.loads(response.body or "{}")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _tag_map(tags: Iterable[Mapping[str, Any]] | None) -> dict[str, str]:
    return {str(t["Key"]): str(t.get("Value", "")) for t in tags or ()}


def _specs(params: Params) -> dict[str, dict[str, str]]:
    """TagSpecifications: resource type -> the tags asked for it."""
    specs: dict[str, dict[str, str]] = {}
    for spec in params.get("TagSpecifications") or ():
        specs.setdefault(str(spec.get("ResourceType")), {}).update(_tag_map(spec.get("Tags")))
    return specs


def _tag_keys_context(request: Request) -> Context:
    """CreateTags/DeleteTags on "*" (WorkSpaces): the tag keys and values of the request."""
    if request.operation == "CreateTags":
        return request_tags(_tag_map(request.params.get("Tags")))
    keys = request.params.get("TagKeys")
    return {"aws:TagKeys": tuple(keys)} if keys else {}


def _tagged_on_create(request: Request, kinds: Sequence[str]) -> list[Authorization]:
    """ec2:CreateTags for what the request creates with tags (tag on create)."""
    specs = _specs(request.params)
    return [request.created(kind, specs[kind], "ec2:CreateTags",
                            {"ec2:CreateAction": (request.operation,)})
            for kind in kinds if specs.get(kind)]


def _instances(request: Request) -> list[Authorization]:
    return [request.existing("instance", i) for i in request.params.get("InstanceIds") or ()]


def _named(kind: str, param: str) -> Callable[[Request], list[Authorization]]:
    """The one existing resource of ``kind`` the ``param`` parameter names."""
    def judged(request: Request) -> list[Authorization]:
        return [request.existing(kind, str(request.params.get(param, "")))]

    return judged


def _volume_and_instance(request: Request) -> list[Authorization]:
    volume_id = str(request.params.get("VolumeId", ""))
    instance_id = request.params.get("InstanceId")
    if not instance_id:  # DetachVolume without InstanceId: the instance it leaves
        volume = request.ec2().volumes.get(volume_id)
        attachment = getattr(volume, "attachment", None)
        instance_id = attachment.instance.id if attachment is not None else None
    found = [request.existing("volume", volume_id)]
    if instance_id:
        found.append(request.existing("instance", str(instance_id)))
    return found


def _create_snapshot(request: Request) -> list[Authorization]:
    specs = _specs(request.params)
    return [request.existing("volume", str(request.params.get("VolumeId", ""))),
            request.created("snapshot", specs.get("snapshot", {})),
            *_tagged_on_create(request, ("snapshot",))]


def _tags(request: Request) -> list[Authorization]:
    tags = _tag_map(request.params.get("Tags"))
    context = (request_tags(tags) if request.operation == "CreateTags"
               else {"aws:TagKeys": tuple(tags)} if tags else {})
    return [request.existing(_kind_of(str(r)), str(r), context=context)
            for r in request.params.get("Resources") or ()]


def _kind_of(resource_id: str) -> str:
    prefix = resource_id.split("-", 1)[0]
    return {"i": "instance", "vol": "volume", "snap": "snapshot", "ami": "image",
            "sg": "security-group", "subnet": "subnet", "eni": "network-interface",
            "replacevol": "replace-root-volume-task"}.get(prefix, prefix)


def _modify_instance_attribute(request: Request) -> list[Authorization]:
    params = request.params
    context: Context = {}
    if params.get("Attribute"):
        context["ec2:Attribute"] = (str(params["Attribute"]),)
    for name, value in params.items():
        if name not in _NOT_ATTRIBUTES:
            said = value.get("Value") if isinstance(value, Mapping) else value
            context[f"ec2:Attribute/{name}"] = (str(said),)
    instance_id = str(params.get("InstanceId", ""))
    found = [request.existing("instance", instance_id, context=context)]
    try:
        instance = request.ec2().get_instance(instance_id)
    except Exception:  # moto's InvalidInstanceID: the call itself will say so
        instance = None
    devices = {str(m.get("DeviceName")) for m in params.get("BlockDeviceMappings") or ()}
    mapping = getattr(instance, "block_device_mapping", {}) or {}
    for device, block in mapping.items():
        if device in devices and getattr(block, "volume_id", None):
            found.append(request.existing("volume", block.volume_id, context=context))
    found += [request.existing("security-group", str(g), context=context)
              for g in params.get("Groups") or ()]
    return found


def _run_instances(request: Request) -> list[Authorization]:
    params, specs = request.params, _specs(request.params)
    found = [request.created(kind, specs.get(kind, {}))
             for kind in ("instance", "volume", "network-interface")]
    found.append(request.existing("image", str(params.get("ImageId", ""))))
    subnet = params.get("SubnetId") or _default_subnet(request)
    if subnet:
        found.append(request.existing("subnet", str(subnet)))
    found += [request.existing("security-group", str(g))
              for g in params.get("SecurityGroupIds") or ()]
    found += _tagged_on_create(request, ("instance", "volume"))
    profile = params.get("IamInstanceProfile") or {}
    if profile:
        found.append(Authorization("iam:PassRole", _role_of(request, profile),
                                   {"iam:PassedToService": ("ec2.amazonaws.com",)}))
    return found


def _default_subnet(request: Request) -> str | None:
    zone = (request.params.get("Placement") or {}).get("AvailabilityZone")
    for subnet in request.ec2().get_default_subnets().values():
        if zone is None or subnet.availability_zone == zone:
            return str(subnet.id)
    return None


def _role_of(request: Request, profile: Mapping[str, Any]) -> str:
    """The role of the instance profile (by name or ARN), as IAM knows it."""
    from moto.iam.models import iam_backends

    name = str(profile.get("Name") or str(profile.get("Arn", "")).rsplit("/", 1)[-1])
    try:
        found = iam_backends[request.account]["global"].get_instance_profile(name)
        return str(found.roles[0].arn)
    except Exception:  # an unknown profile: judged as a role of the same name
        return f"arn:aws:iam::{request.account}:role/{name}"


def _replace_root(request: Request) -> list[Authorization]:
    params, specs = request.params, _specs(request.params)
    found = [request.existing("instance", str(params.get("InstanceId", ""))),
             request.created("replace-root-volume-task",
                             specs.get("replace-root-volume-task", {})),
             request.created("volume", {})]
    if params.get("ImageId"):
        found.append(request.existing("image", str(params["ImageId"])))
    if params.get("SnapshotId"):
        found.append(request.existing("snapshot", str(params["SnapshotId"])))
    return found + _tagged_on_create(request, ("replace-root-volume-task",))


def _create_reservation(request: Request) -> list[Authorization]:
    """CreateCapacityReservation authorizes the reservation it creates (tagged on create)."""
    specs = _specs(request.params)
    return [request.created("capacity-reservation", specs.get("capacity-reservation", {})),
            *_tagged_on_create(request, ("capacity-reservation",))]


def _reservation(request: Request) -> list[Authorization]:
    """Modify/CancelCapacityReservation: the reservation, with its tags (kept by the
    sandbox's reservation model, not moto's tag store)."""
    reservation_id = str(request.params.get("CapacityReservationId", ""))
    found = current().capacity.reservations.get(reservation_id)
    tags = _tag_map(found.Tags if found is not None else ())
    return [Authorization(request.action, request.ec2_arn("capacity-reservation", reservation_id),
                          resource_tags(tags))]


def _send_command(request: Request) -> list[Authorization]:
    name = str(request.params.get("DocumentName", ""))
    account = "" if name.startswith("AWS-") else request.account
    found = [Authorization(request.action,
                           f"arn:aws:ssm:{request.region}:{account}:document/{name}")]
    return found + [request.existing("instance", str(i))
                    for i in request.params.get("InstanceIds") or ()]


def _service_setting(request: Request) -> list[Authorization]:
    """The setting itself (SSM's servicesetting resource), named by its path or ARN."""
    setting = str(request.params.get("SettingId", ""))
    if not setting.startswith("arn:"):
        setting = f"arn:aws:ssm:{request.region}:{request.account}:servicesetting{setting}"
    return [Authorization(request.action, setting)]


def _kms_key(request: Request) -> list[Authorization]:
    """The key (KMS's key resource; Service Authorization Reference, list_awskeymanagement
    service.html), named by its id or ARN."""
    from moto.kms import kms_backends

    key = str(request.params.get("KeyId", ""))
    with contextlib.suppress(Exception):  # moto's NotFound types: KMS answers with its own
        key = str(kms_backends[request.account][request.region].describe_key(key).arn)
    return [Authorization(request.action, key)]


def _unauthorized(_request: Request) -> list[Authorization]:
    """Nothing to authorize: "No permissions are required to perform this operation"
    (STS API reference, GetCallerIdentity:
    https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html)."""
    return []


def _workspaces(field_name: str | None) -> Callable[[Request], list[Authorization]]:
    """The WorkSpaces of ``field_name``'s requests (None: of the WorkspaceId parameter)."""
    def judged(request: Request) -> list[Authorization]:
        items = request.params.get(field_name) if field_name else None
        ids = ([request.params.get("WorkspaceId")] if items is None
               else [item.get("WorkspaceId") for item in items])
        backend = request.response.workspaces_backend
        found = []
        for workspace_id in ids:
            workspace = backend.workspaces.get(workspace_id)
            tags = _tag_map(getattr(workspace, "tags", None))
            found.append(Authorization(
                request.action,
                f"arn:aws:workspaces:{request.region}:{request.account}:workspace/{workspace_id}",
                resource_tags(tags)))
        return found

    return judged


_HANDLERS: Final[Mapping[tuple[str, str], Callable[[Request], list[Authorization]]]] = {
    **{("ec2", op): _instances for op in (
        "StopInstances", "StartInstances", "RebootInstances", "TerminateInstances")},
    ("ec2", "AttachVolume"): _volume_and_instance,
    ("ec2", "DetachVolume"): _volume_and_instance,
    ("ec2", "CreateSnapshot"): _create_snapshot,
    ("ec2", "DeleteVolume"): _named("volume", "VolumeId"),
    ("ec2", "DeleteSnapshot"): _named("snapshot", "SnapshotId"),
    ("ec2", "CreateTags"): _tags,
    ("ec2", "DeleteTags"): _tags,
    ("ec2", "ModifyInstanceAttribute"): _modify_instance_attribute,
    ("ec2", "RunInstances"): _run_instances,
    ("ec2", "CreateReplaceRootVolumeTask"): _replace_root,
    ("ec2", "CreateCapacityReservation"): _create_reservation,
    ("ec2", "ModifyCapacityReservation"): _reservation,
    ("ec2", "CancelCapacityReservation"): _reservation,
    ("ssm", "SendCommand"): _send_command,
    **{("ssm", op): _service_setting for op in (
        "GetServiceSetting", "UpdateServiceSetting", "ResetServiceSetting")},
    ("kms", "GetKeyPolicy"): _kms_key,
    ("kms", "ListGrants"): _kms_key,
    ("sts", "GetCallerIdentity"): _unauthorized,
    ("workspaces", "StartWorkspaces"): _workspaces("StartWorkspaceRequests"),
    ("workspaces", "StopWorkspaces"): _workspaces("StopWorkspaceRequests"),
    ("workspaces", "RebootWorkspaces"): _workspaces("RebootWorkspaceRequests"),
    ("workspaces", "RebuildWorkspaces"): _workspaces("RebuildWorkspaceRequests"),
    ("workspaces", "TerminateWorkspaces"): _workspaces("TerminateWorkspaceRequests"),
    ("workspaces", "RestoreWorkspace"): _workspaces(None),
}
