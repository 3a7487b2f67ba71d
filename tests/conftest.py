"""Fixtures every test folder may use: a VirtualClock, and the sandbox on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from remediate.clock import VirtualClock
from remediate.sandbox import Durations, Sandbox


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def sandbox(clock: VirtualClock) -> Iterator[Sandbox]:
    """AWS as the sandbox simulates it, its state changes on ``clock``."""
    with Sandbox(clock=clock, durations=Durations()) as sb:
        yield sb
