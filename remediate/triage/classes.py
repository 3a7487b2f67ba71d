"""The classes triage puts a target in, and the rules that pick one.

An instance's class comes from three readings: its status checks
(DescribeInstanceStatus), its serial log (:mod:`.serial`) and its boot screen
(:mod:`.screen`). The serial log is the most specific (it names the driver that
crashed), so a bug check naming ``csagent.sys`` makes the incident's class whatever
the screen shows; a stop code on the screen, or another bug check in the log, is a boot
loop even when the status checks pass (a guest between two crashes can pass them; so
passing checks alone never make an instance healthy). A WorkSpace's class comes from
its state (DescribeWorkspaces) and its connection state
(DescribeWorkspacesConnectionStatus).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from remediate.triage.screen import ScreenReading
from remediate.triage.serial import SerialReading


@dataclass(frozen=True)
class TriageClass:
    name: str
    title: str
    broken: bool
    """Whether the target needs a repair (triage's exit code says whether any does)."""


CLASSES: Final = MappingProxyType({c.name: c for c in (
    TriageClass("incident-boot-loop", "boot-looping with the incident's signature "
                "(bug check naming csagent.sys)", True),
    TriageClass("boot-loop", "boot-looping otherwise (a stop code, not the incident's)", True),
    TriageClass("impaired", "unreachable or impaired otherwise", True),
    TriageClass("unread", "could not be read (see the error)", True),
    TriageClass("in-transition", "changing state: look again once it settles", False),
    TriageClass("not-running", "not running: nothing to check until it starts", False),
    TriageClass("healthy", "healthy", False),
)})
"""Every class, in the order a report lists them (the broken first)."""
TAG_KEY: Final = "remediate:triage"
"""The tag ``--tag-classes`` sets to the class name (e.g. ``remediate:triage=boot-loop``)."""

WORKSPACE_BROKEN: Final = frozenset({"UNHEALTHY", "ERROR", "IMPAIRED"})
WORKSPACE_RESTING: Final = frozenset({"STOPPED", "SUSPENDED"})


def _serial(reading: SerialReading) -> str:
    return {"incident": f"bug check {reading.stop_code} naming csagent.sys",
            "bug-check": f"bug check {reading.stop_code}",
            "ready": "Windows is Ready to use",
            "silent": "nothing since boot"}[reading.verdict]


def instance_class(state: str, status: str, serial: SerialReading | None,
                   screen: ScreenReading | None) -> tuple[str, str]:
    """(class, why) of an instance: its state, status check, and readings (None: not
    read, as for an instance that is not running)."""
    if state != "running":
        return "not-running", f"state {state}"
    if serial is None or screen is None:
        return "unread", "serial log or screen not read"
    why = f"status checks {status}; serial log: {_serial(serial)}; screen: {screen.verdict}"
    if serial.verdict == "incident":
        return "incident-boot-loop", why
    if screen.verdict == "stop-code" or serial.verdict == "bug-check":
        return "boot-loop", why
    if status != "ok" or screen.verdict != "login":
        return "impaired", why
    return "healthy", why


def workspace_class(state: str, connection: str) -> tuple[str, str]:
    """(class, why) of a WorkSpace from its state and connection state."""
    why = f"state {state}; connection {connection}"
    if state == "AVAILABLE":
        return "healthy", why
    if state in WORKSPACE_BROKEN:
        return "impaired", why
    if state in WORKSPACE_RESTING:
        return "not-running", why
    return "in-transition", why
