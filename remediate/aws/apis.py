"""AWS operations remediate calls: mutating or not, and the rate bucket each draws from.

This module is the one source of truth for "is this call a mutation" (journaling,
dry-run refusal) and for "which token bucket does it spend" (pacing, and the
sandbox's documented throttling model, :mod:`remediate.sandbox.throttling`).

EC2 evaluates each API individually (:data:`EC2_THROTTLING_PAGE`, "Request rate
limiting": "each API is evaluated individually", a request takes a token from *that
API's* bucket and "requests for other APIs are not affected"). So every EC2 operation
has its own bucket, named like the operation (``ec2.AttachVolume``), sized by its
*category* (``Operation.bucket``: ``ec2.mutating`` 50/5, ``ec2.describe`` 100/20, ...)
or by its own line on that page (``ec2.create-snapshot``, ``ec2.create-tags``,
``ec2.run-instances``, ``ec2.start-instances``). Resource buckets (instances started,
stopped, launched, terminated) come on top. The WorkSpaces and SSM figures are
conservative inferences (AWS publishes them as quotas, not buckets), and those
services' operations share their category's bucket.

A playbook's ``execution.rate_limits`` names either a category (it then sizes the
bucket of every API of that category) or one API (``ec2.AttachVolume``: that API
only, and it wins over its category).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final


@dataclass(frozen=True)
class Bucket:
    """A token bucket: ``capacity`` tokens, refilled at ``refill`` tokens a second."""

    capacity: float
    refill: float


EC2_THROTTLING_PAGE: Final = (
    "https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html")
"""AWS's page for EC2's request and resource token buckets (per account and Region)."""

PER_API_SERVICES: Final = frozenset({"ec2"})
"""Services whose every API has a bucket of its own (EC2_THROTTLING_PAGE)."""

# Category (or own line) -> default bucket. Names are what playbooks write under
# execution.rate_limits. The EC2 figures are EC2_THROTTLING_PAGE's "Request token
# bucket sizes and refill rates" and "Resource token bucket sizes and refill rates".
DEFAULT_BUCKETS: Final = MappingProxyType(
    {
        "ec2.describe": Bucket(100, 20),  # non-mutating actions
        "ec2.describe-unfiltered": Bucket(50, 10),  # unfiltered and unpaginated
        "ec2.mutating": Bucket(50, 5),  # mutating actions
        "ec2.create-snapshot": Bucket(100, 5),  # CreateSnapshot's own line
        "ec2.create-tags": Bucket(100, 10),  # CreateTags' own line
        "ec2.run-instances": Bucket(5, 2),  # RunInstances' own line
        "ec2.start-instances": Bucket(5, 2),  # StartInstances' own line
        # Resource buckets: one token per instance.
        "ec2.run-instances-resource": Bucket(1000, 2),
        "ec2.start-instances-resource": Bucket(1000, 2),
        "ec2.stop-instances-resource": Bucket(1000, 20),
        "ec2.terminate-instances-resource": Bucket(1000, 20),
        "ssm.send-command": Bucket(20, 5),
        "ssm.describe": Bucket(40, 20),
        # Parameter Store's default throughput: 40 GetParameter(s) a second.
        "ssm.get-parameter": Bucket(40, 40),
        "workspaces.mutating": Bucket(10, 2),
        "workspaces.describe": Bucket(20, 10),
        # The claim tag on WorkSpaces (remediate.claims), one WorkSpace a call: its own
        # bucket so claims do not slow the reboots (inference, like the two above).
        "workspaces.tags": Bucket(10, 5),
        "sns.publish": Bucket(30, 30),
        "sts.describe": Bucket(20, 10),
        "dynamodb.describe": Bucket(100, 50),
        "kms.describe": Bucket(100, 50),
        # remediate readiness reads two quotas per account and Region (inference).
        "servicequotas.describe": Bucket(10, 5),
        "iam.describe": Bucket(10, 5),
        # Secrets Manager's documented quota for ListSecrets: 100 requests a second
        # (https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_limits.html).
        "secretsmanager.describe": Bucket(100, 100),
        # Writes to the shared lease table (remediate.leases); on-demand tables take far
        # more: this only paces remediate (inference).
        "leases.write": Bucket(200, 100),
        # Step Functions (Standard): StartExecution as documented for smaller Regions; the
        # others are conservative inferences.
        "states.start-execution": Bucket(800, 150),
        "states.describe": Bucket(250, 50),
        "states.history": Bucket(250, 50),
        "states.mutating": Bucket(100, 1),
    }
)


@dataclass(frozen=True)
class Operation:
    service: str
    name: str
    mutating: bool
    bucket: str
    """Its category (a name of DEFAULT_BUCKETS): what sizes its bucket by default."""
    # The bucket that counts resources rather than requests (Start/StopInstances).
    resource_bucket: str | None = None
    # The request parameter listing ids, and how many one call may carry.
    batch_key: str | None = None
    batch_limit: int = 1
    # The IAM action, when it differs from service:name.
    iam: str | None = None
    # What to do when a mutating call fails in a way that does not say whether AWS did
    # it (a 5xx, a timeout, a reset connection): "resend" it (repeating it changes
    # nothing more: idempotent, or made so by its ``token`` parameter, an idempotency
    # token such as ClientToken, when the request carries one), or "reconcile": the
    # action reads AWS's state and finishes from there (remediate.actions.requests.
    # OutcomeUnknown). AttachVolume, DetachVolume and CreateSnapshot have no token
    # (domain.md, "Ambiguous outcomes").
    on_unknown: str = "reconcile"
    token: str | None = None

    def __post_init__(self) -> None:
        if self.on_unknown not in ("resend", "reconcile"):
            raise ValueError(f"{self.key}: on_unknown is resend or reconcile")

    @property
    def key(self) -> str:
        return f"{self.service}.{self.name}"

    def resendable(self, params: Mapping[str, Any]) -> bool:
        """Whether this request may be sent again when its outcome is unknown."""
        if self.token is not None:
            return bool(params.get(self.token))
        return self.on_unknown == "resend"

    @property
    def iam_action(self) -> str:
        return self.iam or f"{self.service}:{self.name}"

    @property
    def pacing_bucket(self) -> str:
        """The token bucket its requests spend: its own (``ec2.AttachVolume``) where AWS
        evaluates each API individually, else its category's, shared."""
        return self.key if self.service in PER_API_SERVICES else self.bucket


def _ops(*ops: Operation) -> MappingProxyType[str, Operation]:
    return MappingProxyType({op.key: op for op in ops})


_D, _M = False, True
# Mutating operations: on_unknown="resend" where a repeat changes nothing more (stopping
# a stopping instance, setting a tag or an attribute to the same value; a second reboot
# of a crash-looping guest costs a boot, nothing else), token= where the request carries
# an idempotency token (EC2: "Ensuring idempotency in Amazon EC2 API requests",
# docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html; Step Functions:
# StartExecution is idempotent by name and input, RedriveExecution by clientToken).
# Everything else reconciles: the action reads AWS's state first.

OPERATIONS: Final = _ops(
    # EC2, reading
    Operation("ec2", "DescribeInstances", _D, "ec2.describe", batch_key="InstanceIds",
              batch_limit=200),
    Operation("ec2", "DescribeInstanceStatus", _D, "ec2.describe", batch_key="InstanceIds",
              batch_limit=100),
    Operation("ec2", "DescribeInstanceTypes", _D, "ec2.describe", batch_key="InstanceTypes",
              batch_limit=100),
    Operation("ec2", "DescribeInstanceAttribute", _D, "ec2.describe"),
    # The claim tag of remediate.claims, 200 instances a call (a filter, not an id list).
    Operation("ec2", "DescribeTags", _D, "ec2.describe"),
    Operation("ec2", "DescribeVolumes", _D, "ec2.describe", batch_key="VolumeIds",
              batch_limit=200),
    Operation("ec2", "DescribeSnapshots", _D, "ec2.describe", batch_key="SnapshotIds",
              batch_limit=200),
    Operation("ec2", "DescribeImages", _D, "ec2.describe", batch_key="ImageIds",
              batch_limit=200),
    Operation("ec2", "DescribeAddresses", _D, "ec2.describe"),
    Operation("ec2", "DescribeSpotInstanceRequests", _D, "ec2.describe",
              batch_key="SpotInstanceRequestIds", batch_limit=200),
    Operation("ec2", "DescribeReplaceRootVolumeTasks", _D, "ec2.describe",
              batch_key="ReplaceRootVolumeTaskIds", batch_limit=50),
    Operation("ec2", "DescribeAvailabilityZones", _D, "ec2.describe"),
    Operation("ec2", "DescribeRegions", _D, "ec2.describe"),
    Operation("ec2", "DescribeSubnets", _D, "ec2.describe"),
    # remediate triage: the serial log and the boot screen, one instance a call. Both are
    # non-mutating, so each has a bucket of its own of the non-mutating size
    # (EC2_THROTTLING_PAGE, "Request rate limiting": each API is evaluated individually).
    Operation("ec2", "GetConsoleOutput", _D, "ec2.describe"),
    Operation("ec2", "GetConsoleScreenshot", _D, "ec2.describe"),
    # Capacity holds (remediate.actions.capacity_hold), by tag: a filter, not an id list.
    Operation("ec2", "DescribeCapacityReservations", _D, "ec2.describe"),
    # EC2, mutating
    Operation("ec2", "StopInstances", _M, "ec2.mutating",
              resource_bucket="ec2.stop-instances-resource", batch_key="InstanceIds",
              batch_limit=1000, on_unknown="resend"),
    Operation("ec2", "StartInstances", _M, "ec2.start-instances",
              resource_bucket="ec2.start-instances-resource", batch_key="InstanceIds",
              batch_limit=1000, on_unknown="resend"),
    Operation("ec2", "RebootInstances", _M, "ec2.mutating", batch_key="InstanceIds",
              batch_limit=1000, on_unknown="resend"),
    Operation("ec2", "CreateSnapshot", _M, "ec2.create-snapshot"),
    Operation("ec2", "CreateTags", _M, "ec2.create-tags", batch_key="Resources",
              batch_limit=1000, on_unknown="resend"),
    # The claim tag (remediate.claims): deleted only if it still has the value given.
    Operation("ec2", "DeleteTags", _M, "ec2.mutating", batch_key="Resources",
              batch_limit=1000, on_unknown="resend"),
    Operation("ec2", "DetachVolume", _M, "ec2.mutating"),
    Operation("ec2", "AttachVolume", _M, "ec2.mutating"),
    Operation("ec2", "ModifyInstanceAttribute", _M, "ec2.mutating", on_unknown="resend"),
    Operation("ec2", "CreateReplaceRootVolumeTask", _M, "ec2.mutating", token="ClientToken"),
    # Capacity holds: each in the mutating category of EC2_THROTTLING_PAGE (no own line).
    # Opening a reservation, or cancelling one already cancelled (an answer the program
    # takes), changes nothing more when sent again.
    Operation("ec2", "CreateCapacityReservation", _M, "ec2.mutating", token="ClientToken"),
    Operation("ec2", "ModifyCapacityReservation", _M, "ec2.mutating", on_unknown="resend"),
    Operation("ec2", "CancelCapacityReservation", _M, "ec2.mutating", on_unknown="resend"),
    Operation("ec2", "RunInstances", _M, "ec2.run-instances",
              resource_bucket="ec2.run-instances-resource", token="ClientToken"),
    Operation("ec2", "TerminateInstances", _M, "ec2.mutating",
              resource_bucket="ec2.terminate-instances-resource", batch_key="InstanceIds",
              batch_limit=1000, on_unknown="resend"),
    # SSM
    Operation("ssm", "SendCommand", _M, "ssm.send-command", batch_key="InstanceIds",
              batch_limit=50),
    Operation("ssm", "GetCommandInvocation", _D, "ssm.describe"),
    Operation("ssm", "ListCommandInvocations", _D, "ssm.describe"),
    Operation("ssm", "DescribeInstanceInformation", _D, "ssm.describe"),
    # resolve:ssm: rescue images, once per account and Region
    Operation("ssm", "GetParameter", _D, "ssm.get-parameter"),
    # Default Host Management Configuration, once per account and Region (manageability)
    Operation("ssm", "GetServiceSetting", _D, "ssm.describe"),
    # WorkSpaces
    Operation("workspaces", "DescribeWorkspaces", _D, "workspaces.describe",
              batch_key="WorkspaceIds", batch_limit=25),
    Operation("workspaces", "DescribeTags", _D, "workspaces.describe"),
    Operation("workspaces", "DescribeWorkspacesConnectionStatus", _D, "workspaces.describe",
              batch_key="WorkspaceIds", batch_limit=25),
    Operation("workspaces", "StartWorkspaces", _M, "workspaces.mutating",
              batch_key="StartWorkspaceRequests", batch_limit=25),
    Operation("workspaces", "StopWorkspaces", _M, "workspaces.mutating",
              batch_key="StopWorkspaceRequests", batch_limit=25),
    Operation("workspaces", "RebootWorkspaces", _M, "workspaces.mutating",
              batch_key="RebootWorkspaceRequests", batch_limit=25),
    Operation("workspaces", "RebuildWorkspaces", _M, "workspaces.mutating",
              batch_key="RebuildWorkspaceRequests", batch_limit=1),
    Operation("workspaces", "RestoreWorkspace", _M, "workspaces.mutating"),
    # The claim tag (remediate.claims): setting or deleting it again changes nothing more.
    Operation("workspaces", "CreateTags", _M, "workspaces.tags", on_unknown="resend"),
    Operation("workspaces", "DeleteTags", _M, "workspaces.tags", on_unknown="resend"),
    # Notifications, identity, shared locks
    Operation("sns", "Publish", _M, "sns.publish", on_unknown="resend"),
    Operation("sts", "GetCallerIdentity", _D, "sts.describe"),
    # KMS: is the root volume's key usable (DescribeKey shares KMS's 2,000/s read quota)
    Operation("kms", "DescribeKey", _D, "kms.describe"),
    # remediate readiness: may the operator use the key (its policy, its grants)
    Operation("kms", "GetKeyPolicy", _D, "kms.describe"),
    Operation("kms", "ListGrants", _D, "kms.describe"),
    Operation("iam", "SimulatePrincipalPolicy", _D, "iam.describe"),
    # remediate readiness: is each BitLocker recovery key kept (names and types, no key)
    Operation("ssm", "DescribeParameters", _D, "ssm.describe"),
    Operation("secretsmanager", "ListSecrets", _D, "secretsmanager.describe"),
    Operation("service-quotas", "GetServiceQuota", _D, "servicequotas.describe",
              iam="servicequotas:GetServiceQuota"),
    # DynamoDB: the shared lease table (--lock-table)
    Operation("dynamodb", "DescribeTable", _D, "dynamodb.describe"),
    Operation("dynamodb", "GetItem", _D, "dynamodb.describe"),
    Operation("dynamodb", "CreateTable", _M, "leases.write", on_unknown="resend"),
    Operation("dynamodb", "UpdateTimeToLive", _M, "leases.write", on_unknown="resend"),
    Operation("dynamodb", "PutItem", _M, "leases.write", on_unknown="resend"),
    Operation("dynamodb", "UpdateItem", _M, "leases.write", on_unknown="resend"),
    Operation("dynamodb", "DeleteItem", _M, "leases.write", on_unknown="resend"),
    # Step Functions: export, deploy, run --engine stepfunctions
    Operation("stepfunctions", "CreateStateMachine", _M, "states.mutating",
              iam="states:CreateStateMachine", on_unknown="resend"),
    Operation("stepfunctions", "UpdateStateMachine", _M, "states.mutating",
              iam="states:UpdateStateMachine", on_unknown="resend"),
    Operation("stepfunctions", "DescribeStateMachine", _D, "states.describe",
              iam="states:DescribeStateMachine"),
    Operation("stepfunctions", "CreateActivity", _M, "states.mutating",
              iam="states:CreateActivity", on_unknown="resend"),
    Operation("stepfunctions", "StartExecution", _M, "states.start-execution",
              iam="states:StartExecution", token="name"),
    Operation("stepfunctions", "StopExecution", _M, "states.mutating",
              iam="states:StopExecution", on_unknown="resend"),
    Operation("stepfunctions", "RedriveExecution", _M, "states.mutating",
              iam="states:RedriveExecution", token="clientToken"),
    Operation("stepfunctions", "DescribeExecution", _D, "states.describe",
              iam="states:DescribeExecution"),
    Operation("stepfunctions", "ListExecutions", _D, "states.describe",
              iam="states:ListExecutions"),
    Operation("stepfunctions", "GetExecutionHistory", _D, "states.history",
              iam="states:GetExecutionHistory"),
    Operation("stepfunctions", "ListMapRuns", _D, "states.describe", iam="states:ListMapRuns"),
    Operation("stepfunctions", "DescribeMapRun", _D, "states.describe",
              iam="states:DescribeMapRun"),
    Operation("stepfunctions", "GetActivityTask", _D, "states.describe",
              iam="states:GetActivityTask"),
    Operation("stepfunctions", "SendTaskSuccess", _M, "states.mutating",
              iam="states:SendTaskSuccess", on_unknown="resend"),
    Operation("stepfunctions", "SendTaskFailure", _M, "states.mutating",
              iam="states:SendTaskFailure", on_unknown="resend"),
)


RATE_LIMIT_NAMES: Final = (*DEFAULT_BUCKETS,
                            *(op.key for op in OPERATIONS.values() if op.pacing_bucket == op.key))
"""What ``execution.rate_limits`` and ``--rate-limit`` may name: a category (every API of
it) or one API with a bucket of its own."""


def default_bucket(name: str) -> Bucket:
    """AWS's default for a pacing bucket (:attr:`Operation.pacing_bucket`, or a resource
    bucket): a per-API bucket is sized by its operation's category."""
    found = DEFAULT_BUCKETS.get(name)
    if found is not None:
        return found
    return DEFAULT_BUCKETS[OPERATIONS[name].bucket]


class UnknownOperation(KeyError):
    pass


def operation(service: str, name: str) -> Operation:
    try:
        return OPERATIONS[f"{service}.{name}"]
    except KeyError:
        raise UnknownOperation(
            f"{service}.{name} is not in remediate.aws.apis.OPERATIONS") from None


def is_mutating(service: str, name: str) -> bool:
    """Unknown operations count as mutating: refusing too much beats sending too much."""
    op = OPERATIONS.get(f"{service}.{name}")
    return True if op is None else op.mutating


def is_dry_run_probe(service: str, params: Mapping[str, Any]) -> bool:
    """An EC2 request with ``DryRun=True``: AWS checks the caller's permissions and
    answers ``DryRunOperation`` or ``UnauthorizedOperation``, changing nothing."""
    return service == "ec2" and params.get("DryRun") is True
