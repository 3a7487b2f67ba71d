"""The one exception type that means "the user can fix this"."""

from __future__ import annotations


class UserError(Exception):
    """Printed as one line (``error: ...``), exit 1, no traceback, nothing changed in AWS."""

    exit_code: int = 1
