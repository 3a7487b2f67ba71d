"""`remediate validate PATH...`: check playbooks fully, change nothing."""

from __future__ import annotations

import click

from remediate.cli import exitcodes
from remediate.cli.validate_output import FORMATS, RENDERERS
from remediate.language.loader import LoadResult, load_file, playbook_files


@click.command(epilog=exitcodes.EPILOG)
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text for people; json, sarif or junit for CI systems.")
def validate(paths: tuple[str, ...], fmt: str) -> int:
    """Check playbooks (files or folders) before anything runs.

    Structure, types, unknown keys, actions and their parameters, references to
    parameters, facts and step outputs, and guards; every problem with
    file:line:col, the key path, what was expected and what was found.
    """
    files, missing = playbook_files(list(paths))
    results = [load_file(path) for path in files]
    results += [LoadResult(p.file, None, [p]) for p in missing]
    click.echo(RENDERERS[fmt](results))
    return exitcodes.OK if all(not r.problems for r in results) else exitcodes.USAGE
