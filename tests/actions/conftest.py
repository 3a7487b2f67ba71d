"""EC2 fixtures for action tests (all named ``ec2_*``; other engineers share this folder)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ec2_harness import EC2_FLEET, EC2_NO_RETRIES, Ec2Env
from remediate.clock import VirtualClock
from remediate.executor.driver import SyncRuntime
from remediate.sandbox import Durations, Sandbox


@pytest.fixture
def ec2_clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def ec2_sandbox(ec2_clock: VirtualClock) -> Iterator[Sandbox]:
    with Sandbox(clock=ec2_clock, durations=Durations()) as sandbox:
        yield sandbox


@pytest.fixture
def ec2_env(ec2_sandbox: Sandbox, ec2_clock: VirtualClock) -> Ec2Env:
    """A sandbox fleet of every EC2 target kind, and a runtime to run actions on it."""
    fleet = ec2_sandbox.build_fleet(EC2_FLEET)
    clients: dict[tuple[str, str], Any] = {}

    def client(service: str, region: str) -> Any:
        if (service, region) not in clients:
            clients[(service, region)] = ec2_sandbox.client(service, region, EC2_NO_RETRIES)
        return clients[(service, region)]

    runtime = SyncRuntime(client, ec2_clock)
    return Ec2Env(ec2_sandbox, fleet, ec2_clock, runtime, client("ec2", ec2_sandbox.region))
