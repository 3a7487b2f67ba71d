"""Fixtures every test folder may use: a VirtualClock, the sandbox on it, and a state
folder of its own (the host registry of live runs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from remediate.claims.registry import STATE_DIR_VARIABLE
from remediate.clock import VirtualClock
from remediate.sandbox import Durations, Sandbox


@pytest.fixture(autouse=True)
def _state_dir(tmp_path_factory: pytest.TempPathFactory,
               monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own host registry of live runs (never the user's), inherited by the
    processes it starts."""
    folder = tmp_path_factory.mktemp("state")
    monkeypatch.setenv(STATE_DIR_VARIABLE, str(folder))
    return folder


@pytest.fixture(autouse=True)
def _no_rehearsal(monkeypatch: pytest.MonkeyPatch) -> None:
    """`plan` rehearses the run in a child process (seconds each): off, for the processes
    tests start too, unless a test asks for it (``--rehearsal``, as
    tests/cli/test_plan_forecast.py does)."""
    monkeypatch.setenv("REMEDIATE_REHEARSAL", "0")


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def sandbox(clock: VirtualClock) -> Iterator[Sandbox]:
    """AWS as the sandbox simulates it, its state changes on ``clock``."""
    with Sandbox(clock=clock, durations=Durations()) as sb:
        yield sb
