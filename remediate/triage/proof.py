"""Proof of recovery, the screen half: "the boot screen shows a sign-in screen, no stop
code", as a check and as a wait, for any code holding an EC2 client.

A target that passes its status checks may still be crash-looping (a guest between two
crashes passes them), so a repair is proven only when the screen shows the sign-in
screen (:func:`remediate.triage.screen.shows_login`). Not wired into the playbooks yet:
an action (or a verify step) can call :func:`wait_for_login_screen` after its status
checks. Polls go through ``pace`` (e.g. a rate limiter's wait) and the Clock, so a
VirtualClock never sleeps for real; a failed call ends the wait with its error rather
than guessing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from remediate.aws.errors import from_exception
from remediate.clock import Clock
from remediate.triage.screen import read

POLL_SECONDS: Final = 15.0
"""Between two screenshots: boto3's EC2 waiters poll every 15 s."""


@dataclass(frozen=True)
class ScreenCheck:
    shows_login: bool
    seen: str
    """The last screen's verdict (``stop-code``, ``black``, ``login``...), or the error."""


def check_login_screen(ec2: Any, instance_id: str) -> ScreenCheck:
    """One GetConsoleScreenshot: does the instance show its sign-in screen?"""
    try:
        answer = ec2.get_console_screenshot(InstanceId=instance_id)
    except Exception as exc:  # every boto3 failure: reported, never taken for a screen
        return ScreenCheck(False, f"GetConsoleScreenshot: {from_exception(exc)}")
    verdict = read(answer.get("ImageData")).verdict
    return ScreenCheck(verdict == "login", verdict)


def wait_for_login_screen(ec2: Any, instance_id: str, clock: Clock, timeout: float,
                          interval: float = POLL_SECONDS,
                          pace: Callable[[], None] = lambda: None) -> ScreenCheck:
    """Screenshots every ``interval`` until the sign-in screen shows (returned at once) or
    ``timeout`` passes (the last screen seen is returned); a failed call ends it."""
    deadline = clock.now() + timeout
    while True:
        pace()
        found = check_login_screen(ec2, instance_id)
        if found.shows_login or found.seen.startswith("GetConsoleScreenshot:"):
            return found
        if clock.now() + interval > deadline:
            return found
        clock.sleep(interval)
