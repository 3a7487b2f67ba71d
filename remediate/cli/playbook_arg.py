"""Loading the PLAYBOOK argument of a command: problems printed, exit 1."""

from __future__ import annotations

import click

from remediate.cli.exitcodes import UserError
from remediate.language.loader import load_file
from remediate.language.model import Playbook


def load_or_fail(path: str) -> Playbook:
    """The playbook, or a UserError after printing every problem in it."""
    result = load_file(path)
    if result.playbook is None or result.problems:
        for problem in result.problems:
            click.echo(problem.text(), err=True)
        count = len(result.problems)
        raise UserError(f"{path}: {count} problem{'s' if count != 1 else ''}; nothing was run "
                        f"(see `remediate validate {path}`)")
    return result.playbook
