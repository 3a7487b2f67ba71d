"""One account and Region as the checks see it: its targets, their root volumes, and calls.

The checks only read. Each call is retried on throttling with remediate's own policy
(clients never retry); a call that still fails raises :class:`CheckFailed`, which the
runner turns into a failing finding for that rule and scope: a check that could not
look is never a pass.

The targets are described once per scope (DescribeInstances by id, then their root
volumes with DescribeVolumes), and shared by every check.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final

from remediate.aws.apis import OPERATIONS
from remediate.aws.errors import ACCESS_DENIED_CODES, from_exception
from remediate.aws.retry import RetryPolicy
from remediate.aws.retrying import retried
from remediate.clock import Clock
from remediate.discovery import EC2_IDS_PER_CALL
from remediate.readiness.model import Finding, Rule, Scope

# Ids per Describe call: as many as discovery sends (remediate.discovery).
IDS_PER_CALL: Final = EC2_IDS_PER_CALL


class CheckFailed(Exception):
    """A call a check needs failed (after retries): the check cannot say the scope is ready."""

    def __init__(self, message: str, code: str = "", action: str = "") -> None:
        super().__init__(message)
        self.code = code  # AWS's error code
        self.action = action  # the IAM action of the call

    @property
    def fix(self) -> str:
        if self.code in ACCESS_DENIED_CODES:
            return f"allow the identity readiness runs as {self.action} (a read)"
        if self.code == "NoSuchEntity":
            return ("give --operator-arn the ARN of the role runs use (an IAM role or user: "
                    "the policy simulator judges those)")
        return "fix what the error says, then run readiness again"


@dataclass(frozen=True)
class Instance:
    """What the checks need of one target instance."""

    id: str
    image_id: str
    availability_zone: str
    root_volume_id: str | None
    instance_type: str


@dataclass(frozen=True)
class Volume:
    id: str
    encrypted: bool
    kms_key_id: str | None


def chunks(items: Sequence[str], size: int = IDS_PER_CALL) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


@dataclass
class Region:
    """The calls and shared facts of one scope; ``target_ids`` are the discovered targets."""

    scope: Scope
    target_ids: tuple[str, ...]
    clients: Any  # remediate.aws.clients.ClientFactory
    clock: Clock
    first_of_account: bool = True  # account-wide checks (IAM) judge here only
    policy: RetryPolicy = field(default_factory=RetryPolicy)

    def fail(self, rule: Rule, resource: str, message: str, fix: str) -> Finding:
        """A finding of ``rule`` failing for ``resource`` in this scope."""
        return Finding(rule.id, self.scope.account, self.scope.region, resource, message, fix)

    def call(self, service: str, operation: str, **params: Any) -> Mapping[str, Any]:
        from botocore import xform_name

        client = self.clients.client(service, self.scope.region, self.scope.account)
        method = getattr(client, xform_name(operation))
        try:
            response: Mapping[str, Any] = retried(lambda: method(**params), operation,
                                                  self.clock, self.policy)
        except Exception as exc:  # every boto3 failure, once retries are spent
            error = from_exception(exc, operation)
            op = OPERATIONS.get(f"{service}.{operation}")
            action = op.iam_action if op else f"{service}:{operation}"
            raise CheckFailed(f"{operation} failed: {error}", error.code, action) from exc
        return response

    def pages(self, service: str, operation: str, **params: Any) -> Iterator[Mapping[str, Any]]:
        while True:
            page = self.call(service, operation, **params)
            yield page
            token = page.get("NextToken")
            if not token:
                return
            params = {**params, "NextToken": token}

    @cached_property
    def described(self) -> list[Mapping[str, Any]]:
        """Every instance of the scope, as DescribeInstances describes it: one paged scan
        serves the targets' checks and the quota's count of running instances (which
        needs every instance anyway), not one scan for each."""
        found: list[Mapping[str, Any]] = []
        for page in self.pages("ec2", "DescribeInstances", MaxResults=1000):
            for reservation in page.get("Reservations", []):
                found.extend(reservation.get("Instances", []))
        return found

    @cached_property
    def snapshots(self) -> list[Mapping[str, Any]]:
        """The account's own snapshots in the Region (one paged scan: the snapshot checks
        need them all, to count them against the quota)."""
        return [snapshot for page in self.pages("ec2", "DescribeSnapshots", OwnerIds=["self"],
                                                MaxResults=1000)
                for snapshot in page.get("Snapshots", [])]

    @cached_property
    def instances(self) -> list[Instance]:
        """The targets."""
        wanted = set(self.target_ids)
        return sorted((_instance(raw) for raw in self.described if raw["InstanceId"] in wanted),
                      key=lambda i: i.id)

    @cached_property
    def root_volumes(self) -> dict[str, Volume]:
        """Root volume id -> its encryption."""
        wanted = sorted({i.root_volume_id for i in self.instances if i.root_volume_id})
        volumes: dict[str, Volume] = {}
        for ids in chunks(wanted):
            for page in self.pages("ec2", "DescribeVolumes", VolumeIds=ids):
                for raw in page.get("Volumes", []):
                    volumes[raw["VolumeId"]] = Volume(raw["VolumeId"], bool(raw.get("Encrypted")),
                                                      raw.get("KmsKeyId"))
        return volumes


def state_of(instance: Mapping[str, Any]) -> str:
    """A DescribeInstances record's state name (``running``...)."""
    return str(instance.get("State", {}).get("Name", ""))


def _instance(raw: Mapping[str, Any]) -> Instance:
    root = raw.get("RootDeviceName")
    volume = next((m["Ebs"]["VolumeId"] for m in raw.get("BlockDeviceMappings", [])
                   if m.get("DeviceName") == root and "Ebs" in m), None)
    return Instance(raw["InstanceId"], raw.get("ImageId", ""),
                    raw.get("Placement", {}).get("AvailabilityZone", ""), volume,
                    raw.get("InstanceType", ""))
