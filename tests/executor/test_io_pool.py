"""I/O threads grow with the (account, Region) places a run has targets in."""

from __future__ import annotations

import pytest
from executor_support import playbook, step

from remediate.actions.contract import Target
from remediate.clock import VirtualClock
from remediate.errors import UserError
from remediate.executor.engine import Executor
from remediate.executor.events import EventBus
from remediate.executor.io_pool import CAP, PER_PLACE, io_workers, places
from remediate.journal import Journal
from remediate.language.model import Playbook


def _fleet(accounts: int, regions: int, per_place: int = 3) -> list[Target]:
    return [Target("ec2-instance", f"i-{a:04x}{r:04x}{n:09x}", f"region-{r}", f"acct-{a}")
            for a in range(accounts) for r in range(regions) for n in range(per_place)]


def test_one_place_keeps_sixteen_threads_and_each_place_adds_its_share() -> None:
    assert (PER_PLACE, CAP) == (16, 256)
    assert io_workers(_fleet(1, 1), {}) == 16
    assert io_workers(_fleet(1, 3), {}) == 48
    assert io_workers(_fleet(2, 3), {}) == 96
    assert io_workers([], {}) == 16


def test_twenty_accounts_by_three_regions_reach_the_cap() -> None:
    fleet = _fleet(20, 3)
    assert places(fleet) == 60
    assert io_workers(fleet, {}) == 256


def test_the_variable_sets_it_outright() -> None:
    assert io_workers(_fleet(20, 3), {"REMEDIATE_IO_WORKERS": "40"}) == 40
    assert io_workers(_fleet(1, 1), {"REMEDIATE_IO_WORKERS": " "}) == 16


@pytest.mark.parametrize("value", ["0", "-3", "lots", "1.5"])
def test_a_bad_value_is_one_line_with_a_hint(value: str) -> None:
    with pytest.raises(UserError) as raised:
        io_workers(_fleet(1, 1), {"REMEDIATE_IO_WORKERS": value})
    assert str(raised.value) == (
        f"REMEDIATE_IO_WORKERS={value!r}: expected a whole number of I/O threads, at least 1 "
        "(hint: unset it for 16 per account and Region, up to 256)")


def _executor(targets: list[Target], pb: Playbook, **options: int) -> Executor:
    return Executor(pb, targets, clients=lambda *_: None, clock=VirtualClock(),
                    bus=EventBus(), journal=Journal.memory(), run_id="io", **options)


def test_an_executor_over_six_places_gets_six_shares(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REMEDIATE_IO_WORKERS", raising=False)
    pb = playbook(step("wait", "control.pause", {"duration": 1}))
    assert _executor(_fleet(2, 3), pb).workers == 96
    assert _executor(_fleet(1, 1), pb).workers == 16
    assert _executor(_fleet(2, 3), pb, workers=4).workers == 4
