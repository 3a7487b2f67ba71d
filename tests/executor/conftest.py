from __future__ import annotations

from collections.abc import Iterator

import pytest
from executor_support import registered_test_actions, sandbox_clients

from remediate.executor.events import Event, EventBus
from remediate.sandbox import Sandbox


@pytest.fixture(autouse=True)
def _test_actions() -> Iterator[None]:
    with registered_test_actions():
        yield


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
