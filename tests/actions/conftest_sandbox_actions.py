"""The ``action_env`` fixture: a sandbox on a virtual clock with a SyncRuntime over it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox_actions import Env, sandbox_env


@pytest.fixture
def action_env() -> Iterator[Env]:
    with sandbox_env() as env:
        yield env
