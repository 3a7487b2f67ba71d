"""What an instance's serial log (GetConsoleOutput) says about its last boot.

For Windows, EC2's console output carries EC2Launch/EC2Config lines and "the last three
system event log errors" (GetConsoleOutput, EC2 API reference): a guest that crashed
shows its bug check there (event 1001, "The computer has rebooted from a bugcheck. The
bugcheck was: 0x00000050 (...)"), and one that booted shows EC2Launch's "Windows is
Ready to use". The log keeps earlier boots, so only what comes last counts: a bug check
followed by "Ready" is a guest that crashed once and booted since.

The log arrives as text: AWS sends it base64-encoded and botocore decodes it
(``decode_console_output``, registered for ec2.GetConsoleOutput).

The incident's signature (19 July 2024) is a bug check whose lines name ``csagent.sys``,
the CrowdStrike Falcon driver (PAGE_FAULT_IN_NONPAGED_AREA, stop code 0x50).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

Verdict = Literal["incident", "bug-check", "ready", "silent"]

BUG_CHECK: Final = re.compile(
    r"bugcheck was: (0x[0-9a-f]{8})|\*\*\* STOP: (0x[0-9a-f]{8})", re.IGNORECASE)
READY: Final = re.compile(r"Windows is Ready to use", re.IGNORECASE)
INCIDENT_DRIVER: Final = "csagent.sys"


@dataclass(frozen=True)
class SerialReading:
    verdict: Verdict
    """``incident`` (a bug check naming csagent.sys), ``bug-check`` (another one),
    ``ready`` (booted since any bug check), ``silent`` (neither)."""
    stop_code: str | None = None
    """The last bug check's code, e.g. ``0x00000050``."""


def read(text: str) -> SerialReading:
    """The verdict on the last boot the log shows: what follows its last "Ready"."""
    last_ready = max((m.end() for m in READY.finditer(text)), default=-1)
    since = text[max(0, last_ready):]
    checks = list(BUG_CHECK.finditer(since))
    if not checks:
        return SerialReading("ready" if last_ready >= 0 else "silent")
    last = checks[-1]
    code = "0x" + (last.group(1) or last.group(2))[2:].upper()
    verdict: Verdict = "incident" if INCIDENT_DRIVER in since.lower() else "bug-check"
    return SerialReading(verdict, code)
