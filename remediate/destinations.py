"""Files a run writes, checked before it starts: the journal and the reports.

A report found unwritable after a two-hour recovery loses what the auditor reads;
a journal that cannot be created loses the resume. Both are checked before the
first AWS call: this process must be able to create a file in the path's folder,
or in the nearest folder above it that exists (missing folders are made when the
file is written).
"""

from __future__ import annotations

import os
import tempfile

from remediate.errors import UserError


class DestinationError(UserError):
    pass


def _nearest_folder(folder: str) -> str:
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    return folder


def check_destination(path: str, what: str) -> None:
    """Fail in one line, naming ``what`` (the option and its value), if no file can be
    written at ``path``. Leaves nothing behind."""
    target = os.path.abspath(path)
    if os.path.isdir(target):
        raise DestinationError(f"{what}: {path} is a folder, not a file")
    folder = os.path.dirname(target)
    existing = _nearest_folder(folder)
    if not os.path.isdir(existing):
        raise DestinationError(f"{what}: {existing} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".remediate-", suffix=".probe")
    except OSError as exc:
        doing = f"write in {folder}" if existing == folder else f"create {folder}"
        raise DestinationError(f"{what}: cannot {doing}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)
