"""`remediate schema`: the JSON Schema of the playbook language."""

from __future__ import annotations

import json

import click

from remediate.language.jsonschema import playbook_schema


@click.command()
def schema() -> int:
    """Print the playbook language's JSON Schema (for editors and CI)."""
    click.echo(json.dumps(playbook_schema(), indent=2))
    return 0
