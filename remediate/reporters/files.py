"""Report files: rendered whole, then written atomically.

A report is written to a temporary file in the same folder and ``os.replace``d
over the target, so a reader (a CI job, a dashboard polling the file) never sees
half a report, and a crash mid-write leaves the previous one intact. The file
gets the permissions of the report it replaces, else those of any new file
(0666 less the umask; the temporary file's own 0600 would hide it from the CI
job that publishes it). ``-`` as the path writes to standard output instead.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from abc import ABC, abstractmethod

from remediate.reporters.record import RunRecord


def file_mode(path: str) -> int:
    """The permissions ``path`` keeps (if it exists) or a new file gets (umask applied)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0o022)  # read it: os.umask only reads by setting
        os.umask(umask)
        return 0o666 & ~umask


def write_atomically(path: str, text: str) -> None:
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fchmod(fh.fileno(), file_mode(path))
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


class FileReport(ABC):
    """A report format: ``render`` the record to text; calling it writes ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    @abstractmethod
    def render(self, record: RunRecord) -> str:
        """The whole report."""

    def __call__(self, record: RunRecord) -> None:
        write_atomically(self.path, self.render(record))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"
