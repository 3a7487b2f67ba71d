"""A sandbox whose moto executes state machines, all on one VirtualClock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from remediate.clock import VirtualClock
from remediate.export.moto_engine import MotoStepFunctions
from remediate.sandbox import Durations, Sandbox


@pytest.fixture
def sfn_clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def sfn_engine(sfn_clock: VirtualClock) -> Iterator[MotoStepFunctions]:
    with MotoStepFunctions(sfn_clock) as engine:
        yield engine


@pytest.fixture
def sfn_sandbox(sfn_engine: MotoStepFunctions, sfn_clock: VirtualClock) -> Iterator[Sandbox]:
    with Sandbox(clock=sfn_clock, durations=Durations()) as sb:
        yield sb
