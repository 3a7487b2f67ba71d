"""Fixtures of the subprocess scenarios: a sandbox server per test.

The end-state checks are shared with the in-process CLI tests (tests/cli/cli_support.py),
so that folder goes on sys.path here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))

from e2e_support import SandboxServer, start_server

# Simulated seconds per real second, on the server and in the tool: a 3-target offline
# repair (about 25 simulated minutes, batches one after another) takes about 8 s.
CLOCK_FACTOR = 200.0


@pytest.fixture
def sandbox_server(tmp_path: Path) -> Iterator[Callable[..., SandboxServer]]:
    """``sandbox_server(fleet=N)``: `python -m remediate.sandbox` on a free port, stopped
    at the end of the test."""
    servers: list[SandboxServer] = []

    def start(fleet: int = 3, clock_factor: float = CLOCK_FACTOR) -> SandboxServer:
        server = start_server(
            [sys.executable, "-m", "remediate.sandbox", "--port", "0", "--fleet", str(fleet),
             "--clock-factor", str(clock_factor)],
            tmp_path / f"server-{len(servers)}.log", clock_factor=clock_factor)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
