"""`remediate run` and `remediate plan` (the dry-run audit)."""

from __future__ import annotations

import click

from remediate.cli import exitcodes
from remediate.cli.export import items_bucket_option, target_role_option
from remediate.cli.launch import RunRequest, execute
from remediate.cli.lock_table import lock_table_option
from remediate.cli.options import (
    ExecutionArgs,
    TargetArgs,
    audit_options,
    execution_options,
    notify_option,
    target_options,
)


@click.command(epilog=exitcodes.EPILOG)
@click.argument("playbook", type=click.Path(dir_okay=False))
@target_options
@execution_options
@click.option("--dry-run", is_flag=True, help="The audit of `remediate plan`: change nothing.")
@click.option("--yes", "-y", is_flag=True,
              help="Don't ask before starting, nor after the canary batch.")
@notify_option
@lock_table_option
@click.option("--engine", type=click.Choice(["local", "stepfunctions"]), default="local",
              show_default=True, help="Run here, or as an AWS Step Functions execution "
                                      "followed from here.")
@click.option("--state-machine", metavar="NAME",
              help="stepfunctions: the state machine (default: the playbook's name).")
@click.option("--role-arn", metavar="ARN",
              help="stepfunctions: create or update the state machine with this execution "
                   "role (default: it must be deployed already, with this definition).")
@target_role_option()
@items_bucket_option
def run(playbook: str, targets: TargetArgs, execution: ExecutionArgs, dry_run: bool, yes: bool,
        notify: str | None, lock_table: str | None, engine: str, state_machine: str | None,
        role_arn: str | None, target_role_arn: str | None, items_bucket: str | None) -> int:
    """Run PLAYBOOK across its targets.

    Without --yes it first shows what it is about to do to how many targets,
    with every finding, and asks; after the canary batch it shows how the canary
    fared and asks again. Ctrl-C: finish what is in flight and stop (twice: stop
    waiting; the journal lets `remediate resume` continue).
    """
    stepfunctions = None
    if engine == "stepfunctions":
        from remediate.cli.export import compile_or_fail, warn_dropped
        from remediate.cli.options import parse_params, parse_rate_limits
        from remediate.cli.stepfunctions_run import StepFunctionsOptions

        # A playbook that does not export fails before any AWS call.
        compiled = compile_or_fail(playbook, parse_params(execution.params),
                                   frozenset(execution.accepted), target_role_arn, items_bucket)
        warn_dropped(compiled.playbook, judged_by_run=True,
                     rate_limits=parse_rate_limits(execution.rate_limits))
        stepfunctions = StepFunctionsOptions(state_machine, role_arn, target_role_arn,
                                             items_bucket)
    elif target_role_arn or items_bucket:
        from remediate.cli.exitcodes import UserError

        raise UserError("--target-role-arn and --items-bucket are for --engine stepfunctions")
    return execute(RunRequest.from_args(playbook, targets, execution, dry_run=dry_run, yes=yes,
                                        notify=notify, lock_table=lock_table,
                                        stepfunctions=stepfunctions))


@click.command(epilog=exitcodes.EPILOG)
@click.argument("playbook", type=click.Path(dir_okay=False))
@target_options
@audit_options
@click.option("--format", "plan_format", type=click.Choice(["text", "json", "md"]),
              default="text", show_default=True, help="How to print the audit on stdout.")
def plan(playbook: str, targets: TargetArgs, execution: ExecutionArgs, plan_format: str) -> int:
    """The dry-run audit of PLAYBOOK: per target, its findings, the steps it would get or
    skip and why, the API calls; the run's estimated duration. Changes nothing: mutating
    calls are refused in code."""
    return execute(RunRequest.from_args(playbook, targets, execution, dry_run=True, yes=True,
                                        plan_format=plan_format))
