"""The :class:`Sandbox`: moto's ``mock_aws`` plus the realism patches."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import boto3
import botocore.session
from botocore.config import Config

from remediate.clock import Clock, RealClock
from remediate.sandbox import (
    capacity_reservations,
    cloudwatch,
    console,
    dispatch,
    ec2_attributes,
    ec2_filters,
    ec2_instances,
    ec2_scale,
    ec2_volumes,
    iam_simulate,
    kms_keys,
    map_runs,
    replace_root,
    service_quotas,
    ssm,
    ssm_settings,
    state,
    stepfunctions,
    workspaces,
    workspaces_connections,
    workspaces_tags,
)
from remediate.sandbox.durations import Durations
from remediate.sandbox.fleet import DEFAULT_ACCOUNT, Fleet, FleetSpec, build_fleet
from remediate.sandbox.patcher import Patcher
from remediate.sandbox.ssm_registration import SSM_CORE_DOCUMENT
from remediate.sandbox.state import ApiCall, Judged, LostReplies, World
from remediate.sandbox.throttling import Throttle, ThrottlePolicy

FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
_shared_botocore: botocore.session.Session | None = None


def _botocore_session() -> botocore.session.Session:
    """One botocore session per process: service models load once, not per client."""
    global _shared_botocore
    if _shared_botocore is None:
        _shared_botocore = botocore.session.get_session()
    return _shared_botocore


class _SharedSession(boto3.Session):
    """A boto3 Session on the shared botocore session.

    Every boto3 Session registers boto3's customisations (S3's ``upload_file``...)
    on its botocore session; on a shared one, the second Session's handlers ran too,
    and the next S3 client failed ("Cannot inject class attribute upload_file,
    attribute already exists in class dict"). They are registered once here.
    """

    def _register_default_handlers(self) -> None:
        core: Any = self._session
        if not getattr(core, "remediate_boto3_handlers", False):
            super()._register_default_handlers()
            core.remediate_boto3_handlers = True


def shared_session(**options: Any) -> boto3.Session:
    """A boto3 Session on the process's one botocore session, so its clients parse no
    service model again. ``options`` (region, credentials) are set on that shared session:
    a caller making clients in several threads passes them to ``client`` instead."""
    return _SharedSession(botocore_session=_botocore_session(), **options)


class Sandbox:
    """AWS (EC2, EBS, SSM, WorkSpaces) simulated by moto, made realistic.

    Use as a context manager. On entry it patches moto's backends and response
    handlers and starts ``mock_aws`` (in-process mode) so boto3 calls travel
    through moto; on exit it stops the mock and restores moto exactly.
    With ``in_process=False`` no mock is started: requests arrive through a moto
    server in this process (see :mod:`remediate.sandbox.server`).

    State changes take :class:`Durations` on ``clock``; they are applied lazily
    whenever a request arrives. With a ``VirtualClock`` nothing sleeps: advance
    the clock, then describe.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        durations: Durations | None = None,
        region: str = "us-east-1",
        *,
        in_process: bool = True,
        endpoint_url: str | None = None,
        dhmc: bool = True,
    ) -> None:
        """``dhmc``: whether every account and Region starts with Default Host Management
        Configuration on, so instances without an instance profile register with SSM
        (see :mod:`remediate.sandbox.ssm_settings`)."""
        self.region = region
        self.endpoint_url = endpoint_url
        self._world = World(clock or RealClock(), durations or Durations(),
                            dhmc_by_default=dhmc)
        self._in_process = in_process
        self._patcher = Patcher()
        self._mock: Any = None
        self._clients: dict[tuple[str, str, int | None, str], Any] = {}
        self._credentials: dict[str, dict[str, str]] = {DEFAULT_ACCOUNT: FAKE_CREDENTIALS}

    # ---- lifecycle -------------------------------------------------------------

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        state.activate(self._world)
        try:
            for module in (
                dispatch,
                ec2_scale,
                ec2_instances,
                console,
                ec2_volumes,
                ec2_attributes,
                ec2_filters,
                replace_root,
                service_quotas,
                iam_simulate,
                ssm,
                ssm_settings,
                stepfunctions,
                map_runs,  # after stepfunctions: its DescribeExecution wraps that one's
                workspaces,
                workspaces_tags,
                workspaces_connections,
                cloudwatch,
                capacity_reservations,
                kms_keys,
            ):
                module.install(self._patcher)
            if self._in_process:
                from moto import mock_aws

                self._mock = mock_aws()
                self._mock.start()
        except BaseException:
            self._patcher.undo()
            state.deactivate(self._world)
            raise

    def stop(self) -> None:
        try:
            if self._mock is not None:
                self._mock.stop()
                self._mock = None
        finally:
            self._patcher.undo()
            state.deactivate(self._world)

    # ---- building and talking to it -------------------------------------------

    @property
    def clock(self) -> Clock:
        return self._world.clock

    @property
    def durations(self) -> Durations:
        return self._world.durations

    def boto3_session(self, region: str | None = None,
                      account: str = DEFAULT_ACCOUNT) -> boto3.Session:
        """A boto3 session with fake credentials, in ``region`` (default: the sandbox's),
        acting in ``account`` (default: moto's default account)."""
        return shared_session(region_name=region or self.region,
                              **self._account_credentials(account))

    def _account_credentials(self, account: str) -> dict[str, str]:
        """Credentials that act in ``account``: moto answers a request in the account
        whose IAM holds its access key, and AssumeRole puts the key there (the way
        remediate reaches other accounts, through roles). Made once per account."""
        if account not in self._credentials:
            sts = self.boto3_session().client("sts", endpoint_url=self.endpoint_url)
            given = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/sandbox",
                                    RoleSessionName="sandbox")["Credentials"]
            self._credentials[account] = {
                "aws_access_key_id": given["AccessKeyId"],
                "aws_secret_access_key": given["SecretAccessKey"],
                "aws_session_token": given["SessionToken"]}
        return self._credentials[account]

    def client(self, service: str, region: str | None = None, config: Config | None = None,
               account: str = DEFAULT_ACCOUNT) -> Any:
        """A boto3 client for ``service`` talking to this sandbox, in ``account`` (cached
        per service, Region, config and account: making one costs ~0.1 s)."""
        key = (service, region or self.region, id(config) if config is not None else None,
               account)
        if key not in self._clients:
            self._clients[key] = self.boto3_session(region, account).client(
                service, endpoint_url=self.endpoint_url, config=config
            )
        return self._clients[key]

    def fail(self, operation: str, code: str, message: str = "", *,
             times: int | None = None) -> None:
        """Answer every ``operation`` call (e.g. ``DescribeKey``) with AWS error ``code``
        until :meth:`clear_faults`: for missing permissions, outages and the like. With
        ``times``, only the next ``times`` calls fail (a throttle that passes)."""
        if times is not None and times < 1:
            raise ValueError("times must be at least 1")
        with self._world.lock:
            self._world.faults[operation] = (code, message)
            self._world.fault_calls_left.pop(operation, None)
            if times is not None:
                self._world.fault_calls_left[operation] = times

    def lose_replies(self, operation: str = "*", probability: float = 1.0, *, seed: int = 0,
                     times: int | None = None) -> None:
        """Let mutating ``operation`` calls (``*``: every mutating call) take effect and
        then answer 500 ``InternalError``, each with ``probability`` (seeded); with
        ``times``, only that many. Until :meth:`clear_faults`."""
        with self._world.lock:
            self._world.lost_replies[operation] = LostReplies(probability, seed, times)

    def fail_snapshots(self, volume_id: str) -> None:
        """Snapshots of ``volume_id`` taken from now on end ``error`` instead of
        ``completed`` (an EBS snapshot can fail after CreateSnapshot returned)."""
        with self._world.lock:
            self._world.failing_snapshots.add(volume_id)

    def set_quota(self, service_code: str, quota_code: str, value: float, *,
                  region: str | None = None, account: str = DEFAULT_ACCOUNT) -> None:
        """Service Quotas' applied value of a quota :mod:`service_quotas` models (e.g.
        ``ec2``, ``L-1216C47A``) in ``account`` and ``region`` (default: the sandbox's)."""
        with self._world.lock:
            self._world.quotas[(account, region or self.region, service_code,
                                quota_code)] = value

    def enforce_policy(self, policy: Mapping[str, Any] | None) -> None:
        """Judge every request from now on as IAM would under ``policy`` (an identity-based
        policy document; None: stop), refusing what it does not allow with AWS's error
        (UnauthorizedOperation, AccessDeniedException); :attr:`authorizations` records each
        decision."""
        with self._world.lock:
            self._world.policy = policy
            self._world.authorizations.clear()

    @property
    def authorizations(self) -> list[Judged]:
        """Every resource a request authorized under the enforced policy, and the decision."""
        with self._world.lock:
            return list(self._world.authorizations)

    def set_capacity(self, instance_type: str, zone: str, instances: int | None, *,
                     at: float | None = None) -> None:
        """Let the account hold at most ``instances`` of ``instance_type`` in ``zone``
        (running outside a Capacity Reservation, plus reserved; None: no limit), from now
        or from sandbox time ``at`` (an AZ running out mid-run). Starting, launching or
        reserving more then fails with InsufficientInstanceCapacity."""
        with self._world.lock:
            if at is None:
                self._world.capacity.set_limit(instance_type, zone, instances)
                return
            world = self._world
            world.timeline.also(("capacity", instance_type, zone), at,
                                lambda _: world.capacity.set_limit(instance_type, zone,
                                                                   instances))

    @property
    def capacity_reservations_created(self) -> int:
        """How many Capacity Reservations were created since the sandbox started."""
        with self._world.lock:
            return self._world.capacity.created

    def clear_faults(self) -> None:
        with self._world.lock:
            self._world.faults.clear()
            self._world.fault_calls_left.clear()
            self._world.lost_replies.clear()

    def build_fleet(self, spec: FleetSpec) -> Fleet:
        """Build a broken fleet (see :class:`FleetSpec`); clears :attr:`api_calls` after."""
        clients: dict[tuple[str, str], Any] = {}

        def client(service: str, region: str) -> Any:
            if (service, region) not in clients:
                clients[(service, region)] = self.client(service, region,
                                                         account=spec.account)
            return clients[(service, region)]

        fleet = build_fleet(self._world, client, spec)
        self.reset_api_calls()
        return fleet

    def ssm_instance_profile(self, name: str, account: str = DEFAULT_ACCOUNT) -> str:
        """Create instance profile ``name`` whose role (also ``name``) lets the SSM Agent
        register an instance (AmazonSSMManagedInstanceCore's core actions, inline: moto
        does not load AWS managed policies), through IAM; returns ``name``."""
        iam = self.client("iam", account=account)
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole"}]}
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        iam.put_role_policy(RoleName=name, PolicyName="ssm-core",
                            PolicyDocument=json.dumps(SSM_CORE_DOCUMENT))
        iam.create_instance_profile(InstanceProfileName=name)
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
        return name

    # ---- inspection ----------------------------------------------------------------

    def channel_file_present(self, volume_id: str) -> bool:
        """Whether the volume's disk still holds ``C-00000291*.sys``."""
        with self._world.lock:
            self._world.catch_up()
            return volume_id in self._world.bad_volumes

    def instance_store_intact(self, instance_id: str) -> bool:
        """False once an instance-store instance was stopped, hibernated or terminated."""
        with self._world.lock:
            self._world.catch_up()
            facts = self._world.instances.get(instance_id)
            return facts is None or facts.instance_store_intact

    def set_throttle(self, policy: ThrottlePolicy | None) -> None:
        """Throttle requests from now on (``None``: stop throttling)."""
        with self._world.lock:
            self._world.throttle = None if policy is None else Throttle(policy)

    @property
    def api_calls(self) -> list[ApiCall]:
        """Every request since the fleet was built (or the last reset), in order."""
        with self._world.lock:
            return list(self._world.calls)

    def api_call_counts(self, *, throttled: bool | None = None) -> Counter[tuple[str, str]]:
        """``(service, operation)`` -> count, optionally only (non-)throttled calls."""
        with self._world.lock:
            return Counter(
                (c.service, c.operation)
                for c in self._world.calls
                if throttled is None or c.throttled == throttled
            )

    def reset_api_calls(self) -> None:
        """Forget every request so far (and the authorizations judged for them)."""
        with self._world.lock:
            self._world.calls.clear()
            self._world.authorizations.clear()

    def next_deadline(self) -> float | None:
        """When the next pending state change is due (for driving a VirtualClock)."""
        with self._world.lock:
            return self._world.timeline.next_deadline()

    @property
    def world(self) -> World:
        """The sandbox's internal state (for the sandbox's own tests and tools)."""
        return self._world
