"""Quoting values that end up inside a PowerShell or POSIX shell script.

Values never get spliced into script text raw: they are quoted here, and values
with characters no quoting makes safe (NUL, newlines) are rejected.
"""

from __future__ import annotations

import shlex


class UnsafeValue(ValueError):
    pass


def _reject_controls(value: str) -> None:
    for ch in value:
        if ch in "\x00\r\n" or (ord(ch) < 32 and ch != "\t"):
            raise UnsafeValue(f"refusing to put {value!r} into a script: it holds a control "
                              "character (newline, NUL, ...)")


def powershell_quote(value: str) -> str:
    """A PowerShell single-quoted literal: no expansion; ' (and its Unicode look-alikes) doubled."""
    _reject_controls(value)
    quoted = value
    for quote in ("'", "\u2018", "\u2019", "\u201a", "\u201b"):
        quoted = quoted.replace(quote, quote * 2)
    return f"'{quoted}'"


def sh_quote(value: str) -> str:
    """A POSIX shell single-quoted word."""
    _reject_controls(value)
    return shlex.quote(value)


QUOTERS = {"powershell": powershell_quote, "sh": sh_quote}
