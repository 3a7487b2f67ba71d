"""Fixtures of the command-line tests: a fleet the commands under test must leave as it is."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cli_support import CliSandbox, cli_sandbox, root_states
from remediate.sandbox import FleetSpec


@pytest.fixture(scope="module")
def fleet() -> Iterator[CliSandbox]:
    """One sandbox for the module: none of these commands may change it."""
    with pytest.MonkeyPatch.context() as monkeypatch, \
            cli_sandbox(monkeypatch, FleetSpec(plain=2, azs=1)) as cli:
        yield cli


@pytest.fixture
def unchanged(fleet: CliSandbox) -> Iterator[CliSandbox]:
    """The fleet, checked after the test: no mutating call, every instance as it was."""
    before = root_states(fleet.ec2, fleet.fleet.instance_ids())
    fleet.sandbox.reset_api_calls()
    yield fleet
    assert fleet.mutating_calls() == []
    assert root_states(fleet.ec2, fleet.fleet.instance_ids()) == before
