"""Which playbook `remediate resume` runs: the copy journaled when the run started.

A run's playbook is journaled with it, so a playbook edited since (even a
comment), moved or deleted changes nothing: the journaled copy runs, and a note
says the file differs. Running the edited file instead is an explicit choice
(``--edited-playbook``) that first shows the diff. A journal written by an older
remediate holds only the playbook's hash: the file must be the same, unless
``--edited-playbook`` (and then no diff can be shown).
"""

from __future__ import annotations

import difflib
import os

import click

from remediate.cli.exitcodes import UserError
from remediate.cli.playbook_arg import load_or_fail, loaded_or_fail
from remediate.journal import RunRecord
from remediate.language.loader import load_text
from remediate.language.model import Playbook


def resume_playbook(record: RunRecord, path: str | None, edited: bool) -> Playbook:
    """The playbook to resume ``record`` with; ``path``: where it is now, if it moved (its
    scripts are read from its folder)."""
    path = path or record.playbook_path
    if record.playbook_text is None:
        if edited:
            click.echo(f"note: the journal of run {record.run_id} holds no copy of its "
                       f"playbook (an older remediate wrote it): no diff to show; running "
                       f"{path} as it is now", err=True)
        return load_or_fail(path)
    now = _read(path)
    if edited and now is None:
        raise UserError(f"--edited-playbook: there is no playbook at {path}")
    if edited and now != record.playbook_text:
        click.echo(diff(record.playbook_text, str(now), path, record.run_id), err=True,
                   nl=False)
        click.echo(f"resuming run {record.run_id} with the edited {path} (--edited-playbook); "
                   "it is the run's playbook from now on", err=True)
        return load_or_fail(path)
    if now != record.playbook_text:
        what = "is gone" if now is None else "changed"
        click.echo(f"note: {path} {what} since run {record.run_id} started; resuming with "
                   "the playbook journaled then (--edited-playbook runs the file as it is "
                   "now, after showing the diff)", err=True)
    return loaded_or_fail(load_text(record.playbook_text, path, os.path.dirname(path) or "."))


def diff(journaled: str, now: str, path: str, run_id: str) -> str:
    lines = difflib.unified_diff(journaled.splitlines(keepends=True),
                                 now.splitlines(keepends=True),
                                 fromfile=f"{path} (journaled when run {run_id} started)",
                                 tofile=f"{path} (now)")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError):
        return None
