"""Loading the PLAYBOOK argument of a command: problems printed, exit 1."""

from __future__ import annotations

import click

from remediate.cli.exitcodes import UserError
from remediate.language.loader import LoadResult, load_file
from remediate.language.model import Playbook


def load_or_fail(path: str) -> Playbook:
    """The playbook, or a UserError after printing every problem in it."""
    return loaded_or_fail(load_file(path))


def loaded_or_fail(result: LoadResult) -> Playbook:
    """The playbook ``result`` holds, or a UserError after printing every problem in it."""
    path = result.source
    if result.playbook is None or result.problems:
        for problem in result.problems:
            click.echo(problem.text(), err=True)
        count = len(result.problems)
        raise UserError(f"{path}: {count} problem{'s' if count != 1 else ''}; nothing was run "
                        f"(see `remediate validate {path}`)")
    return result.playbook
