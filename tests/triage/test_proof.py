"""The reusable "shows a sign-in screen" check and wait, against the sandbox."""

from __future__ import annotations

import pytest

from remediate.clock import Clock, ScaledClock, VirtualClock
from remediate.sandbox import FleetSpec, Sandbox
from remediate.triage.proof import ScreenCheck, check_login_screen, wait_for_login_screen


@pytest.mark.parametrize("clock", [VirtualClock(), ScaledClock(600.0)],
                         ids=["virtual", "moving"])
def test_a_rebooted_guest_is_waited_for_until_it_shows_its_sign_in_screen(
        clock: Clock) -> None:
    with Sandbox(clock=clock) as sandbox:
        fleet = sandbox.build_fleet(FleetSpec(plain=1, reboot_fixable=1, reboots_to_fix=1,
                                              azs=1))
        ec2 = sandbox.client("ec2")
        fixable, broken = fleet.instance_ids("reboot_fixable")[0], fleet.instance_ids(
            "plain")[0]
        ec2.reboot_instances(InstanceIds=[fixable, broken])
        started = clock.now()

        assert check_login_screen(ec2, fixable) == ScreenCheck(False, "black")  # booting
        assert wait_for_login_screen(ec2, fixable, clock, timeout=600) == ScreenCheck(
            True, "login")
        assert clock.now() - started < 600  # not the whole timeout
        # Still crashing on the channel file: the stop code, after the whole timeout.
        assert wait_for_login_screen(ec2, broken, clock, timeout=120) == ScreenCheck(
            False, "stop-code")


def test_a_failed_screenshot_ends_the_wait_with_its_error() -> None:
    clock = VirtualClock()
    with Sandbox(clock=clock) as sandbox:
        fleet = sandbox.build_fleet(FleetSpec(healthy=1, plain=0, azs=1))
        sandbox.fail("GetConsoleScreenshot", "UnauthorizedOperation", "Not allowed.")
        found = wait_for_login_screen(sandbox.client("ec2"), fleet.targets[0].instance_id,
                                      clock, timeout=600)
    assert found == ScreenCheck(False, "GetConsoleScreenshot: UnauthorizedOperation: "
                                       "Not allowed.")
    assert clock.now() == 0.0  # no wait after an error
