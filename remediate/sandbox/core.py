"""The :class:`Sandbox`: moto's ``mock_aws`` plus the realism patches."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import boto3
import botocore.session
from botocore.config import Config

from remediate.clock import Clock, RealClock
from remediate.sandbox import (
    dispatch,
    ec2_attributes,
    ec2_filters,
    ec2_instances,
    ec2_scale,
    ec2_volumes,
    map_runs,
    replace_root,
    ssm,
    state,
    stepfunctions,
    workspaces,
    workspaces_tags,
)
from remediate.sandbox.durations import Durations
from remediate.sandbox.fleet import Fleet, FleetSpec, build_fleet
from remediate.sandbox.patcher import Patcher
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
    ) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self._world = World(clock or RealClock(), durations or Durations())
        self._in_process = in_process
        self._patcher = Patcher()
        self._mock: Any = None
        self._clients: dict[tuple[str, str, int | None], Any] = {}

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
                ec2_volumes,
                ec2_attributes,
                ec2_filters,
                replace_root,
                ssm,
                stepfunctions,
                map_runs,  # after stepfunctions: its DescribeExecution wraps that one's
                workspaces,
                workspaces_tags,
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

    def boto3_session(self, region: str | None = None) -> boto3.Session:
        """A boto3 session with fake credentials, in ``region`` (default: the sandbox's)."""
        return _SharedSession(
            region_name=region or self.region,
            botocore_session=_botocore_session(),
            **FAKE_CREDENTIALS,
        )

    def client(self, service: str, region: str | None = None, config: Config | None = None) -> Any:
        """A boto3 client for ``service`` talking to this sandbox (cached per service,
        Region and config: making one costs ~0.1 s)."""
        key = (service, region or self.region, id(config) if config is not None else None)
        if key not in self._clients:
            self._clients[key] = self.boto3_session(region).client(
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
                clients[(service, region)] = self.client(service, region)
            return clients[(service, region)]

        fleet = build_fleet(self._world, client, spec)
        self.reset_api_calls()
        return fleet

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
