"""Launching one rescue instance: its config, subnet choice, the RunInstances request.

Also the device slots a rescue instance offers (``xvdf``..``xvdp``). Rescue
instances are tagged with the run id (so a resumed run, and the end-of-run
cleanup, find them by tag), require IMDSv2, and delete their own root volume on
termination: that volume is ours. Customer volumes are never part of a launch.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from remediate.actions.requests import Call, Request, StepFailed, observe, state_of

RUN_TAG: Final = "remediate:run-id"
ROLE_TAG: Final = "remediate:role"
ROLE: Final = "rescue"
SLOTS: Final = tuple(f"xvd{letter}" for letter in "fghijklmnop")

# A generator of requests returning a value: ``result = yield from step(...)``.
Pulled = Generator[Request, Any, Any]


def slot_of(device: str) -> str:
    """``/dev/sdf``, ``/dev/xvdf`` and ``xvdf`` are one slot: ``xvdf``."""
    name = device.removeprefix("/dev/")
    return "xvd" + name[2:] if name.startswith("sd") else name


@dataclass(frozen=True)
class RescueConfig:
    """How to launch rescue instances (from the attach step's parameters)."""

    image_id: str
    instance_type: str = "t3.medium"
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    instance_profile: str | None = None
    max_per_az: int = 2
    volumes_per_instance: int = len(SLOTS)
    ready_timeout: float = 1200.0


_CONFIG_FIELDS: Final = ("instance_type", "instance_profile", "max_per_az",
                         "volumes_per_instance", "ready_timeout")


def config_of(params: Mapping[str, Any], image_id: str) -> RescueConfig:
    """How to launch rescue instances from ``image_id`` (what rescue_image_id names in the
    Region), from rescue.attach_volume's parameters (those not given keep RescueConfig's
    defaults, which are the parameters' defaults)."""
    config = RescueConfig(image_id=image_id,
                          subnet_ids=tuple(params.get("subnet_ids") or ()),
                          security_group_ids=tuple(params.get("security_group_ids") or ()))
    return replace(config, **{name: params[name] for name in _CONFIG_FIELDS
                              if params.get(name) is not None})


@dataclass(frozen=True)
class Launched:
    instance_id: str
    platform: str  # "windows" or "linux"
    root_slot: str


def launch(run_id: str, region: str, az: str, config: RescueConfig,
           client_token: str) -> Pulled:
    """RunInstances for one rescue instance in ``az``; returns :class:`Launched`."""
    image = yield observe("image", config.image_id)
    if image is None or state_of("image", image) != "available":
        state = "not found" if image is None else state_of("image", image)
        raise StepFailed(f"rescue image {config.image_id} is {state} in {region}")
    subnet_id = yield from subnet_in(az, config)
    request = {**launch_request(run_id, az, config, {"SubnetId": subnet_id}),
               "ClientToken": client_token, "BlockDeviceMappings": [root_mapping(image)]}
    response = yield Call("ec2", "RunInstances", request,
                          note=f"launch a rescue instance in {az}")
    return Launched(
        instance_id=str(response["Instances"][0]["InstanceId"]),
        platform="windows" if image.get("Platform") == "windows" else "linux",
        root_slot=slot_of(str(image.get("RootDeviceName", "/dev/sda1"))),
    )


def rescue_tags(run_id: Any, name: Any) -> list[dict[str, Any]]:
    """The tags of a rescue instance (and its volumes): the run, the role, its Name."""
    return [{"Key": RUN_TAG, "Value": run_id}, {"Key": ROLE_TAG, "Value": ROLE},
            {"Key": "Name", "Value": name}]


def launch_request(run_id: str, az: str, config: RescueConfig,
                   where: Mapping[str, Any]) -> dict[str, Any]:
    """RunInstances for one rescue instance in ``az``, placed by ``where`` (a SubnetId, or
    a Placement), without the parts only a real launch knows (token, root mapping)."""
    return instance_request(rescue_tags(run_id, f"remediate-rescue-{az}"), config, where)


def instance_request(tags: list[dict[str, Any]], config: RescueConfig,
                     where: Mapping[str, Any]) -> dict[str, Any]:
    """RunInstances for one rescue instance tagged ``tags``, placed by ``where``."""
    request: dict[str, Any] = {
        "ImageId": config.image_id,
        "InstanceType": config.instance_type,
        "MinCount": 1,
        "MaxCount": 1,
        **where,
        "MetadataOptions": {"HttpTokens": "required"},
        "TagSpecifications": [{"ResourceType": "instance", "Tags": tags},
                              {"ResourceType": "volume", "Tags": tags}],
    }
    if config.security_group_ids:
        request["SecurityGroupIds"] = list(config.security_group_ids)
    if config.instance_profile:
        profile = config.instance_profile
        request["IamInstanceProfile"] = (
            {"Arn": profile} if profile.startswith("arn:") else {"Name": profile})
    return request


def probe_request(run_id: str, az: str | None, config: RescueConfig) -> dict[str, Any]:
    """The RunInstances a dry run sends with DryRun=True: the real launch's image, type,
    tags, profile and groups, in a configured subnet (else the AZ's default subnet)."""
    where: dict[str, Any] = (
        {"SubnetId": config.subnet_ids[0]} if config.subnet_ids
        else {"Placement": {"AvailabilityZone": az}} if az else {})
    return launch_request(run_id, az or "its-az", config, where)


def subnet_in(az: str, config: RescueConfig) -> Pulled:
    """The subnet of ``config.subnet_ids`` in ``az``, else the AZ's default subnet."""
    if config.subnet_ids:
        response = yield Call("ec2", "DescribeSubnets", {"SubnetIds": list(config.subnet_ids)})
        for subnet in response.get("Subnets", []):
            if subnet.get("AvailabilityZone") == az:
                return subnet["SubnetId"]
        raise StepFailed(f"none of subnet_ids ({', '.join(config.subnet_ids)}) is in {az}: "
                         f"add a subnet in {az}")
    response = yield Call("ec2", "DescribeSubnets", {"Filters": [
        {"Name": "availability-zone", "Values": [az]},
        {"Name": "default-for-az", "Values": ["true"]}]})
    subnets = response.get("Subnets", [])
    if not subnets:
        raise StepFailed(f"no default subnet in {az}: set subnet_ids to a subnet in {az} "
                         "from which the SSM endpoints are reachable")
    return subnets[0]["SubnetId"]


def root_mapping(image: Mapping[str, Any]) -> dict[str, Any]:
    """The image's root device, deleted with the instance: the rescue root is ours."""
    root = image.get("RootDeviceName", "/dev/sda1")
    ebs: dict[str, Any] = {"DeleteOnTermination": True}
    for mapping in image.get("BlockDeviceMappings", []):
        if mapping.get("DeviceName") == root and mapping.get("Ebs", {}).get("VolumeSize"):
            ebs["VolumeSize"] = mapping["Ebs"]["VolumeSize"]
    return {"DeviceName": root, "Ebs": ebs}


def tag_filters(run_id: Any, states: tuple[str, ...],
                *extra: dict[str, Any]) -> list[dict[str, Any]]:
    """DescribeInstances filters for this run's rescue instances in ``states`` (none:
    any state), and ``extra`` ones. ``run_id``: the run's id, or a program's Var."""
    filters = [{"Name": f"tag:{RUN_TAG}", "Values": [run_id]},
               {"Name": f"tag:{ROLE_TAG}", "Values": [ROLE]}, *extra]
    if states:
        filters.append({"Name": "instance-state-name", "Values": list(states)})
    return filters
