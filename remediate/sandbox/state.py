"""The sandbox's own state: what moto does not model (time, health, the incident).

One :class:`World` is active at a time (moto's backends are process-global);
the patched moto methods reach it through :func:`current`.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from remediate.clock import Clock
from remediate.sandbox.capacity import Capacity
from remediate.sandbox.child_executions import MapRunChildren
from remediate.sandbox.durations import Durations
from remediate.sandbox.idempotency import Tokens
from remediate.sandbox.throttling import Throttle
from remediate.sandbox.timeline import Timeline

READ_ONLY_PREFIXES: tuple[str, ...] = ("Describe", "Get", "List")
# Reads whose names say otherwise: IAM's policy simulator only evaluates policies.
READ_ONLY_OPERATIONS: frozenset[str] = frozenset({"SimulatePrincipalPolicy"})


@dataclass(frozen=True)
class ApiCall:
    """One request the sandbox received."""

    service: str
    operation: str
    throttled: bool
    at: float
    dry_run: bool = False
    """EC2's ``DryRun=True``: a permission check that changes nothing."""
    reply_lost: bool = False
    """It took effect, and the caller got a 500 instead of the reply (lost_replies)."""
    request: Any = field(default="", compare=False, repr=False)
    """What the request said: its JSON body, or its parsed query string (EC2's query
    protocol: name -> values), kept as moto parsed it (not copied)."""

    def names(self, resource_id: str) -> bool:
        """Whether the request named ``resource_id`` (an instance, a WorkSpace, ...)."""
        if isinstance(self.request, dict):
            return any(resource_id in str(value) for values in self.request.values()
                       for value in values)
        return resource_id in str(self.request)

    @property
    def mutating(self) -> bool:
        return not self.dry_run and not self.operation.startswith(READ_ONLY_PREFIXES) \
            and self.operation not in READ_ONLY_OPERATIONS


@dataclass(frozen=True)
class Judged:
    """One resource a request authorized, and IAM's decision (Sandbox.enforce_policy)."""

    service: str
    operation: str
    action: str
    """The IAM action judged (``ec2:CreateTags`` for a RunInstances that tags on create)."""
    resource: str
    decision: str
    """``allowed``, ``denied`` (an explicit Deny) or ``not allowed`` (no Allow)."""
    call: int
    """The request's index in the API log (``Sandbox.api_calls``)."""
    dry_run: bool = False
    context: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def allowed(self) -> bool:
        return self.decision == "allowed"


@dataclass
class InstanceFacts:
    """What the sandbox knows about an instance beyond moto's model."""

    spot_type: str | None = None
    """``one-time`` or ``persistent`` for Spot instances."""
    instance_store: bool = False
    instance_store_intact: bool = True
    reboot_fix_after: int | None = None
    """Reboot-fixable targets: reboots until the sensor has the fixed channel file."""
    reboots: int = 0
    status: str = "initializing"
    """Instance status check while running: ``initializing``, ``ok`` or ``impaired``."""
    platform: str = "Windows"
    guest: str | None = None
    """A guest broken for another reason than the channel file: ``boot-loop`` (another
    bug check) or ``black`` (a hung guest, nothing on screen); see
    :mod:`remediate.sandbox.console`. None: it follows the root volume."""
    replacing_root: bool = False
    stop_due: float | None = None
    """While ``stopping``: when it reaches ``stopped``."""
    capacity_preference: str = "open"
    """``CapacityReservationSpecification.CapacityReservationPreference``."""
    capacity_target: str | None = None
    """The Capacity Reservation the instance targets, if any."""
    capacity_reservation: str | None = None
    """The Capacity Reservation it ran in when it last started (None: On-Demand)."""


@dataclass
class WorkspaceFacts:
    """A WorkSpace's hidden condition: what repairs it (``healthy`` if nothing is wrong)."""

    fixed_by: str = "healthy"
    """``healthy``, ``reboot``, ``restore`` or ``rebuild``."""
    state_since: float = 0.0
    changes: list[str] = field(default_factory=list)
    """The state changes AWS began on it, in order (``RestoreWorkspace``...): a request
    refused, throttled or sent again while one is under way adds nothing, so tests can
    tell a restore that happened twice from one that was only asked for twice."""


@dataclass
class LostReplies:
    """A fault: the call takes effect, then its reply is lost (AWS answers 500
    ``InternalError``, as it may during a large event; domain.md "Ambiguous outcomes").

    Each call is hit with ``probability``; with ``times``, only that many calls are hit,
    then the fault ends. Each operation draws from its own stream seeded with ``seed``,
    so a seed loses the same replies of each operation whatever order concurrent calls
    of different operations arrive in."""

    probability: float = 1.0
    seed: int = 0
    times: int | None = None
    streams: dict[str, random.Random] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.probability <= 1.0:
            raise ValueError("probability must be in (0, 1]")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1")

    def hit(self, operation: str) -> bool:
        """Whether this ``operation`` call's reply is lost (counts ``times`` down)."""
        if self.times is not None and self.times <= 0:
            return False
        stream = self.streams.get(operation)
        if stream is None:
            stream = self.streams[operation] = random.Random(f"{self.seed}:{operation}")
        if self.probability < 1.0 and stream.random() >= self.probability:
            return False
        if self.times is not None:
            self.times -= 1
        return True


@dataclass(frozen=True)
class RecoveryKey:
    """A BitLocker volume's recovery key protector: its ID (what an SRE looks up) and its
    48-digit recovery password (what unlocks it)."""

    key_id: str
    password: str

    @classmethod
    def of(cls, volume_id: str) -> RecoveryKey:
        """A key derived from the volume id (the sandbox's fleets are reproducible)."""
        digest = hashlib.sha256(volume_id.encode()).hexdigest()
        number = int(digest, 16)
        # Eight groups of six digits, each a multiple of 11 (as BitLocker's are).
        groups = [f"{(number >> (20 * i)) % 59_582 * 11:06d}" for i in range(8)]
        key_id = "{" + "-".join((digest[:8], digest[8:12], digest[12:16], digest[16:20],
                                 digest[20:32])).upper() + "}"
        return cls(key_id, "-".join(groups))


@dataclass
class World:
    """Everything the patches share: clock, durations, deadlines, incident, API log."""

    clock: Clock
    durations: Durations
    timeline: Timeline = field(default_factory=Timeline)
    lock: threading.RLock = field(default_factory=threading.RLock)
    bad_volumes: set[str] = field(default_factory=set)
    """Volumes whose disk holds a ``C-00000291*.sys`` channel file."""
    bad_snapshots: set[str] = field(default_factory=set)
    marketplace_volumes: set[str] = field(default_factory=set)
    """Volumes with AWS Marketplace product codes (the Marketplace targets' roots): they
    attach only to a stopped instance."""
    failing_snapshots: set[str] = field(default_factory=set)
    """Volumes whose snapshots end ``error`` instead of ``completed`` (Sandbox.fail_snapshots)."""
    bitlocker_volumes: dict[str, RecoveryKey] = field(default_factory=dict)
    """Volumes encrypted with BitLocker, and their recovery key: a repair script opens
    them only with that key, read from the escrow it names (:mod:`remediate.sandbox.incident`)."""
    sensor_stopped: set[str] = field(default_factory=set)
    """Instances whose Falcon sensor service does not run (the in-guest check fails)."""
    instances: dict[str, InstanceFacts] = field(default_factory=dict)
    workspaces: dict[str, WorkspaceFacts] = field(default_factory=dict)
    calls: list[ApiCall] = field(default_factory=list)
    throttle: Throttle | None = None
    faults: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Operation -> (code, message): errors injected by tests (Sandbox.fail)."""
    fault_calls_left: dict[str, int] = field(default_factory=dict)
    """Operation -> how many more calls its fault answers (absent: every call)."""
    lost_replies: dict[str, LostReplies] = field(default_factory=dict)
    """Operation (or ``*``) -> how often its call takes effect and the reply is lost."""
    tokens: Tokens = field(default_factory=Tokens)
    """EC2 client tokens seen, and the answers to repeat (moto ignores them)."""
    snapshotted: set[str] = field(default_factory=set)
    """Volumes with a snapshot: a later one is incremental (``Durations.snapshot_of``)."""
    created: dict[str, float] = field(default_factory=dict)
    """Snapshot or SSM command id -> when it was created: listings show it only
    ``Durations.listing_lag`` later (AWS is eventually consistent)."""
    internal: int = 0
    """Above zero while moto acts on its own (launch, terminate): rules and timing pause."""
    online_listeners: list[Callable[[Any, float], None]] = field(default_factory=list)
    """Called with (moto instance, time) when an instance finishes a healthy boot."""
    ssm_waiting: dict[str, list[Callable[[float], None]]] = field(default_factory=dict)
    """SSM invocations waiting for their (offline) instance to come online."""
    map_run_children: MapRunChildren = field(default_factory=MapRunChildren)
    """Distributed Map items run by moto's interpreter, as AWS's child executions."""
    capacity: Capacity = field(default_factory=Capacity)
    """Capacity per (type, AZ) and Capacity Reservations (Sandbox.set_capacity)."""
    policy: Mapping[str, Any] | None = None
    """The caller's IAM policy, enforced on every request (Sandbox.enforce_policy)."""
    authorizations: list[Judged] = field(default_factory=list)
    """Every authorization judged under :attr:`policy`, in order."""
    quotas: dict[tuple[str, str, str, str], float] = field(default_factory=dict)
    """(account, Region, service code, quota code) -> applied value (Sandbox.set_quota)."""
    service_settings: dict[tuple[str, str, str], str] = field(default_factory=dict)
    """(account, Region, setting path) -> SSM service setting value (see ssm_settings)."""
    dhmc_by_default: bool = True
    """Whether an account and Region no one set starts with Default Host Management
    Configuration on (AWS's accounts start with it off; the sandbox's stand for ones
    set up for remediate)."""

    def facts(self, instance_id: str) -> InstanceFacts:
        found = self.instances.get(instance_id)
        if found is None:
            found = self.instances[instance_id] = InstanceFacts()
        return found

    def workspace(self, workspace_id: str) -> WorkspaceFacts:
        found = self.workspaces.get(workspace_id)
        if found is None:
            found = self.workspaces[workspace_id] = WorkspaceFacts()
        return found

    @contextmanager
    def moto_internal(self) -> Iterator[None]:
        """Let moto act on its own (launch, terminate) without sandbox rules or timing."""
        self.internal += 1
        try:
            yield
        finally:
            self.internal -= 1

    def take_fault(self, operation: str) -> tuple[str, str] | None:
        """The fault injected on ``operation`` for this call, counting it down (call with
        :attr:`lock` held)."""
        fault = self.faults.get(operation)
        if fault is None or operation not in self.fault_calls_left:
            return fault
        self.fault_calls_left[operation] -= 1
        if self.fault_calls_left[operation] <= 0:
            del self.fault_calls_left[operation]
            del self.faults[operation]
        return fault

    def loses_reply(self, operation: str) -> bool:
        """Whether the reply of this (mutating, admitted) call is to be lost (call with
        :attr:`lock` held)."""
        fault = self.lost_replies.get(operation) or self.lost_replies.get("*")
        return fault is not None and fault.hit(operation)

    def listed(self, resource_id: str) -> bool:
        """Whether a listing (not a read by id) shows this resource yet."""
        created = self.created.get(resource_id)
        return created is None or self.clock.now() >= created + self.durations.listing_lag

    def now(self) -> float:
        return self.clock.now()

    def catch_up(self) -> None:
        """Apply every state change whose deadline has passed."""
        with self.lock:
            self.timeline.run_due(self.clock.now())

    def call_counts(self) -> Counter[tuple[str, str]]:
        return Counter((c.service, c.operation) for c in self.calls)


_active: World | None = None


def activate(world: World) -> None:
    global _active
    if _active is not None:
        raise RuntimeError("another Sandbox is already active in this process")
    _active = world


def deactivate(world: World) -> None:
    global _active
    if _active is world:
        _active = None


def current() -> World:
    if _active is None:
        raise RuntimeError("no Sandbox is active")
    return _active


def maybe_current() -> World | None:
    return _active
