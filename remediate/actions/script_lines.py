"""The lines SSM Run Command runs: quoted variable assignments, then the script.

Values never reach a script as raw text: each becomes an assignment quoted for the
document's shell (``$Name = '...'`` or ``NAME='...'``) put before the commands.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

from remediate.language.quoting import QUOTERS, UnsafeValue

VARIABLE_RE: Final = r"[A-Za-z_][A-Za-z0-9_]{0,63}"


def assignment(shell: str, name: str, quoted: str) -> str:
    """``$Name = <quoted>`` (PowerShell) or ``Name=<quoted>`` (sh)."""
    return f"${name} = {quoted}" if shell == "powershell" else f"{name}={quoted}"


def build_script(shell: str, variables: Mapping[str, str], body: Sequence[str]) -> list[str]:
    """Quoted assignments for ``variables``, then ``body``: the lines SSM runs.

    Raises :class:`UnsafeValue` for a value no quoting makes safe (newlines, NUL).
    """
    quote = QUOTERS[shell]
    lines = []
    for name, value in variables.items():
        if not re.fullmatch(VARIABLE_RE, name):
            raise UnsafeValue(f"{name!r} is not a variable name")
        lines.append(assignment(shell, name, quote(str(value))))
    return [*lines, *body]
