"""EC2 fixtures for action tests (on the root conftest's ``clock`` and ``sandbox``)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore_support import NO_RETRIES

from ec2_harness import EC2_FLEET, Ec2Env
from remediate.clock import VirtualClock
from remediate.executor.driver import SyncRuntime
from remediate.sandbox import Sandbox


@pytest.fixture
def ec2_env(sandbox: Sandbox, clock: VirtualClock) -> Ec2Env:
    """A sandbox fleet of every EC2 target kind, and a runtime to run actions on it."""
    fleet = sandbox.build_fleet(EC2_FLEET)
    clients: dict[tuple[str, str], Any] = {}

    def client(service: str, region: str) -> Any:
        if (service, region) not in clients:
            clients[(service, region)] = sandbox.client(service, region, NO_RETRIES)
        return clients[(service, region)]

    runtime = SyncRuntime(client, clock)
    return Ec2Env(sandbox, fleet, clock, runtime, client("ec2", sandbox.region))
