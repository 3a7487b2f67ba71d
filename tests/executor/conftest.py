from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from executor_support import registered_test_actions, sandbox_clients

from remediate.executor.events import Event, EventBus
from remediate.journal import Journal
from remediate.sandbox import FleetSpec, Sandbox


@pytest.fixture(autouse=True)
def _test_actions() -> Iterator[None]:
    with registered_test_actions():
        yield


@pytest.fixture
def fleet_ids(sandbox: Sandbox) -> list[str]:
    """Ten plain instances over two AZs."""
    return sandbox.build_fleet(FleetSpec(plain=10, azs=2)).instance_ids()


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "run.journal")


@pytest.fixture
def clients(sandbox: Sandbox) -> object:
    return sandbox_clients(sandbox)


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
def bus(events: list[Event]) -> EventBus:
    bus = EventBus()
    bus.subscribe(events.append)
    return bus
