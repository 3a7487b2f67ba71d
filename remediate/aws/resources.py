"""Resources the executor can poll, many ids to one Describe call.

Each entry says which call lists the resource, how to ask for many ids at once,
how to find each id's record in the response and how to name its state. Ids that
AWS no longer knows simply come back as ``None`` (filters, not id lists, are used
where AWS would fail the whole call on one unknown id).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

Record = Mapping[str, Any]
MISSING = "missing"
HOLD_TAG: Final = "remediate:capacity-for"


@dataclass(frozen=True)
class Resource:
    name: str
    service: str
    operation: str
    # Builds the request for a chunk of ids.
    request: Callable[[list[str]], dict[str, Any]]
    # Yields (id, record) pairs from one response page.
    records: Callable[[Mapping[str, Any]], Iterator[tuple[str, Record]]]
    state: Callable[[Record | None], str]
    max_ids: int
    # Response key holding the next-page token, if the call paginates.
    next_token: str | None = "NextToken"


def _field(*path: str) -> Callable[[Record | None], str]:
    def get(record: Record | None) -> str:
        if record is None:
            return MISSING
        value: Any = record
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        return str(value) if value is not None else MISSING

    return get


def _by_filter(name: str) -> Callable[[list[str]], dict[str, Any]]:
    return lambda ids: {"Filters": [{"Name": name, "Values": list(ids)}]}


def _instances(response: Mapping[str, Any]) -> Iterator[tuple[str, Record]]:
    for reservation in response.get("Reservations", []):
        for instance in reservation.get("Instances", []):
            yield instance["InstanceId"], instance


def _listed(key: str, id_key: str) -> Callable[[Mapping[str, Any]], Iterator[tuple[str, Record]]]:
    def records(response: Mapping[str, Any]) -> Iterator[tuple[str, Record]]:
        for item in response.get(key, []):
            yield item[id_key], item

    return records


def _holds(response: Mapping[str, Any]) -> Iterator[tuple[str, Record]]:
    """Capacity Reservations by the instance whose capacity each holds (its
    ``remediate:capacity-for`` tag, see remediate.actions.capacity_hold)."""
    for item in response.get("CapacityReservations", []):
        for tag in item.get("Tags", []):
            if tag.get("Key") == HOLD_TAG:
                yield tag["Value"], item


def instance_health(record: Record | None) -> str:
    """One word for an instance's status checks: ok, impaired, initializing, not-running."""
    if record is None:
        return MISSING
    if record.get("InstanceState", {}).get("Name") != "running":
        return "not-running"
    statuses = {
        record.get("InstanceStatus", {}).get("Status", "initializing"),
        record.get("SystemStatus", {}).get("Status", "initializing"),
    }
    if "impaired" in statuses:
        return "impaired"
    if "insufficient-data" in statuses and "initializing" not in statuses:
        return "insufficient-data"
    if statuses == {"ok"}:
        return "ok"
    return "initializing"


def _invocation_request(ids: list[str]) -> dict[str, Any]:
    command_id, instance_id = ids[0].split(":", 1)
    return {"CommandId": command_id, "InstanceId": instance_id}


def _invocation(response: Mapping[str, Any]) -> Iterator[tuple[str, Record]]:
    yield f"{response['CommandId']}:{response['InstanceId']}", response


RESOURCES: Final = MappingProxyType(
    {
        r.name: r
        for r in (
            Resource("instance", "ec2", "DescribeInstances", _by_filter("instance-id"),
                     _instances, _field("State", "Name"), 200),
            # The claim tag of remediate.claims (CLAIM_TAG) on instances: only that tag
            # is listed, so an instance without a claim reads as None.
            Resource("instance-claim", "ec2", "DescribeTags",
                     lambda ids: {"Filters": [{"Name": "resource-id", "Values": list(ids)},
                                              {"Name": "key", "Values": ["remediate:claim"]}]},
                     _listed("Tags", "ResourceId"), _field("Value"), 200),
            Resource("instance-status", "ec2", "DescribeInstanceStatus",
                     lambda ids: {"InstanceIds": list(ids), "IncludeAllInstances": True},
                     _listed("InstanceStatuses", "InstanceId"), instance_health, 100),
            Resource("volume", "ec2", "DescribeVolumes", _by_filter("volume-id"),
                     _listed("Volumes", "VolumeId"), _field("State"), 200),
            Resource("snapshot", "ec2", "DescribeSnapshots", _by_filter("snapshot-id"),
                     _listed("Snapshots", "SnapshotId"), _field("State"), 200),
            Resource("image", "ec2", "DescribeImages", _by_filter("image-id"),
                     _listed("Images", "ImageId"), _field("State"), 200, None),
            Resource("replace-root-task", "ec2", "DescribeReplaceRootVolumeTasks",
                     lambda ids: {"ReplaceRootVolumeTaskIds": list(ids)},
                     _listed("ReplaceRootVolumeTasks", "ReplaceRootVolumeTaskId"),
                     _field("TaskState"), 50),
            Resource("workspace", "workspaces", "DescribeWorkspaces",
                     lambda ids: {"WorkspaceIds": list(ids)},
                     _listed("Workspaces", "WorkspaceId"), _field("State"), 25),
            Resource("ssm-agent", "ssm", "DescribeInstanceInformation",
                     lambda ids: {"Filters": [{"Key": "InstanceIds", "Values": list(ids)}]},
                     _listed("InstanceInformationList", "InstanceId"), _field("PingStatus"), 50),
            # The active Capacity Reservation holding an instance's capacity while it is
            # stopped (remediate.actions.capacity_hold), by the instance's id.
            Resource("capacity-hold", "ec2", "DescribeCapacityReservations",
                     lambda ids: {"Filters": [{"Name": f"tag:{HOLD_TAG}", "Values": list(ids)},
                                              {"Name": "state", "Values": ["active"]}]},
                     _holds, _field("State"), 200),
            # One id per call: "<command-id>:<instance-id>".
            Resource("command-invocation", "ssm", "GetCommandInvocation", _invocation_request,
                     _invocation, _field("Status"), 1, None),
        )
    }
)
