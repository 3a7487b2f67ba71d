"""The serial-log and boot-screen readers, and the class rules, on their own."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from remediate.sandbox import console, screens
from remediate.triage import screen, serial
from remediate.triage.classes import instance_class, workspace_class
from remediate.triage.screen import ScreenReading
from remediate.triage.serial import SerialReading

INCIDENT = console.SERIAL["incident"].format(t="2024/07/19 04:12:00Z")
OTHER = console.SERIAL["boot-loop"].format(t="2024/07/19 04:12:00Z")
READY = console.SERIAL["healthy"].format(t="2024/07/19 09:00:00Z")


@pytest.mark.parametrize(("log", "expected"), [
    (INCIDENT, SerialReading("incident", "0x00000050")),
    (OTHER, SerialReading("bug-check", "0x0000007B")),
    (READY, SerialReading("ready")),
    ("", SerialReading("silent")),
    # Booted since it crashed: the crash is history.
    (INCIDENT + READY, SerialReading("ready")),
    # Crashed again after a good boot: the last boot counts, csagent.sys and all.
    (READY + INCIDENT, SerialReading("incident", "0x00000050")),
    # The incident's earlier crash does not make a later, different crash the incident's.
    (INCIDENT + READY + OTHER, SerialReading("bug-check", "0x0000007B")),
])
def test_the_serial_log_says_what_the_last_boot_did(log: str, expected: SerialReading) -> None:
    assert serial.read(log) == expected


def _jpeg_of(colour: tuple[int, int, int]) -> str:
    out = io.BytesIO()
    Image.new("RGB", (80, 60), colour).save(out, format="JPEG")
    return base64.b64encode(out.getvalue()).decode()


@pytest.mark.parametrize(("image_data", "verdict"), [
    (screens.image_data("stop-code"), "stop-code"),
    (screens.image_data("login"), "login"),
    (screens.image_data("black"), "black"),
    (_jpeg_of((0, 0, 170)), "stop-code"),  # the older stop-code blue
    (_jpeg_of((16, 113, 170)), "stop-code"),  # Server 2012's
    (_jpeg_of((200, 200, 200)), "login"),
    ("not base64!", "unreadable"),
    (base64.b64encode(b"not a picture").decode(), "unreadable"),
    (None, "unreadable"),
])
def test_the_screen_is_judged_by_its_dominant_colours(image_data: str | None,
                                                      verdict: str) -> None:
    assert screen.read(image_data).verdict == verdict
    assert screen.shows_login(image_data) is (verdict == "login")


def test_half_blue_is_not_yet_a_stop_code() -> None:
    blue, grey = (0, 120, 215), (90, 90, 90)
    assert screen.judge([blue] * 49 + [grey] * 51).verdict == "login"
    assert screen.judge([blue] * 50 + [grey] * 50).verdict == "stop-code"
    assert screen.judge([(0, 0, 0)] * 96 + [grey] * 4).verdict == "login"
    assert screen.judge([(0, 0, 0)] * 97 + [grey] * 3).verdict == "black"


LOGIN, STOP, BLACK = (ScreenReading("login"), ScreenReading("stop-code"),
                      ScreenReading("black"))


@pytest.mark.parametrize(("state", "status", "log", "shown", "expected"), [
    ("running", "impaired", SerialReading("incident", "0x00000050"), STOP,
     "incident-boot-loop"),
    # The log names the driver even when the screen caught the guest between crashes.
    ("running", "impaired", SerialReading("incident", "0x00000050"), BLACK,
     "incident-boot-loop"),
    ("running", "impaired", SerialReading("bug-check", "0x0000007B"), STOP, "boot-loop"),
    # Passing status checks with a stop code on screen is not healthy.
    ("running", "ok", SerialReading("ready"), STOP, "boot-loop"),
    ("running", "impaired", SerialReading("silent"), BLACK, "impaired"),
    ("running", "ok", SerialReading("ready"), BLACK, "impaired"),
    ("running", "initializing", SerialReading("silent"), LOGIN, "impaired"),
    ("running", "ok", SerialReading("ready"), LOGIN, "healthy"),
    ("stopped", "not-applicable", None, None, "not-running"),
    ("running", "ok", None, None, "unread"),
])
def test_instance_classes(state: str, status: str, log: SerialReading | None,
                          shown: ScreenReading | None, expected: str) -> None:
    assert instance_class(state, status, log, shown)[0] == expected


@pytest.mark.parametrize(("state", "expected"), [
    ("AVAILABLE", "healthy"), ("UNHEALTHY", "impaired"), ("ERROR", "impaired"),
    ("IMPAIRED", "impaired"), ("STOPPED", "not-running"), ("REBOOTING", "in-transition"),
    ("REBUILDING", "in-transition"),
])
def test_workspace_classes(state: str, expected: str) -> None:
    assert workspace_class(state, "UNKNOWN") == (expected, f"state {state}; connection UNKNOWN")
