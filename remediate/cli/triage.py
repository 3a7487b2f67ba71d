"""`remediate triage`: classify every selected instance and WorkSpace; change nothing
(unless ``--tag-classes``)."""

from __future__ import annotations

import click

from remediate.cli.options import TargetArgs, target_options

KINDS = ("all", "ec2-instance", "workspace")


@click.command(epilog="Exit codes: 0 no target needs a repair; 1 usage error; 2 some "
                      "target needs a repair (or could not be read, or tagged); 3 "
                      "unexpected error; 130 interrupted.")
@target_options
@click.option("--kind", type=click.Choice(KINDS), default="all", show_default=True,
              help="Instances, WorkSpaces, or both.")
@click.option("--output", "output", type=click.Choice(["text", "json", "markdown"]),
              default="text", show_default=True, help="How to print the triage on stdout.")
@click.option("--tag-classes", is_flag=True,
              help="Tag each target remediate:triage=<class> (idempotent), so `run --tag "
                   "remediate:triage=incident-boot-loop` selects that class.")
def triage(targets: TargetArgs, kind: str, output: str, tag_classes: bool) -> int:
    """Classify every selected EC2 instance and WorkSpace, and say why: status checks,
    the serial log (bug check lines) and the boot screen (stop code, sign-in screen or
    black); WorkSpaces by state and connection. Broken ones get the routes they could
    take and what blocks each. Without --tag-classes it changes nothing."""
    from remediate.cli.triage_run import TriageRequest, run_triage

    return run_triage(TriageRequest(targets, kind, output, tag_classes))

