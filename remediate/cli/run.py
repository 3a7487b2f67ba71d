"""`remediate run` and `remediate plan` (the dry-run audit)."""

from __future__ import annotations

import click

from remediate.cli import exitcodes
from remediate.cli.alarms import stop_on_alarm_option
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

# run and plan (a retry can be planned, approved, then applied with `run --plan`).
retry_failed_option = click.option(
    "--retry-failed", metavar="REPORT|JOURNAL|RUN_ID",
    help="Only the targets that failed, were rolled back or were interrupted in an earlier run: "
         "its JSON report, its journal, or its run id (in --journal).")

rehearsal_option = click.option(
    "--rehearsal/--no-rehearsal", default=None, envvar="REMEDIATE_REHEARSAL",
    help="Dry run: forecast the run's calls and duration by rehearsing it on a simulated copy "
         "of the fleet (needs the `sandbox` extra); without: an estimate from the API rates "
         "alone, at once. Default: rehearse up to 500 targets (more take minutes).")


@click.command(epilog=exitcodes.EPILOG)
@click.argument("playbook", type=click.Path(dir_okay=False), required=False)
@target_options
@execution_options
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="Apply the plan `remediate plan --out FILE` saved: its playbook text, "
                   "parameters, accepted findings and approved targets, nothing else; a "
                   "target changed since is refused. PLAYBOOK may be left out.")
@retry_failed_option
@click.option("--dry-run", is_flag=True, help="The audit of `remediate plan`: change nothing.")
@rehearsal_option
@click.option("--yes", "-y", is_flag=True,
              help="Don't ask before starting, nor after the canary batch.")
@notify_option
@lock_table_option
@stop_on_alarm_option
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
def run(playbook: str | None, targets: TargetArgs, execution: ExecutionArgs,
        plan_path: str | None, retry_failed: str | None, dry_run: bool, rehearsal: bool | None,
        yes: bool, notify: str | None, lock_table: str | None, stop_on_alarm: tuple[str, ...],
        engine: str,
        state_machine: str | None, role_arn: str | None, target_role_arn: str | None,
        items_bucket: str | None) -> int:
    """Run PLAYBOOK across its targets.

    Without --yes it first shows what it is about to do to how many targets,
    with every finding, and asks; after the canary batch it shows how the canary
    fared and asks again. Ctrl-C: finish what is in flight and stop (twice: stop
    waiting; the journal lets `remediate resume` continue). --stop-on-alarm: the
    same first stop when a CloudWatch alarm is in ALARM (those not started are
    skipped).
    """
    from remediate.cli.exitcodes import UserError

    if plan_path is not None and retry_failed is not None:
        raise UserError("--plan and --retry-failed each choose the targets: give one")
    if playbook is None and plan_path is None:
        raise click.UsageError("Missing argument 'PLAYBOOK' (or --plan FILE, an approved "
                               "plan).", click.get_current_context())
    if plan_path is not None and engine == "stepfunctions":
        raise UserError(f"--plan {plan_path}: approved plans run on the local engine only "
                        "(leave out --engine stepfunctions)")
    stepfunctions = None
    if engine == "stepfunctions":
        from remediate.cli.export import compile_or_fail, warn_dropped
        from remediate.cli.options import parse_params, parse_rate_limits
        from remediate.cli.stepfunctions_run import StepFunctionsOptions

        # A playbook that does not export fails before any AWS call.
        compiled = compile_or_fail(playbook or "", parse_params(execution.params),
                                   frozenset(execution.accepted), target_role_arn, items_bucket)
        warn_dropped(compiled.playbook, judged_by_run=True,
                     rate_limits=parse_rate_limits(execution.rate_limits))
        stepfunctions = StepFunctionsOptions(state_machine, role_arn, target_role_arn,
                                             items_bucket)
    elif target_role_arn or items_bucket:
        raise UserError("--target-role-arn and --items-bucket are for --engine stepfunctions")
    return execute(RunRequest.from_args(playbook or "", targets, execution, dry_run=dry_run,
                                        yes=yes, notify=notify, lock_table=lock_table,
                                        stepfunctions=stepfunctions, plan_path=plan_path,
                                        retry_failed=retry_failed, stop_on_alarm=stop_on_alarm,
                                        rehearsal=dry_run and rehearsal))


@click.command(epilog=exitcodes.EPILOG)
@click.argument("playbook", type=click.Path(dir_okay=False))
@target_options
@audit_options
@click.option("--format", "plan_format", type=click.Choice(["text", "json", "md"]),
              default="text", show_default=True, help="How to print the audit on stdout.")
@click.option("--out", "plan_out", type=click.Path(dir_okay=False), metavar="FILE",
              help="Save the plan to approve (JSON): targets and their facts, the playbook's "
                   "text, parameters, accepted findings, who planned and when; `remediate "
                   "run --plan FILE` applies exactly that.")
@retry_failed_option
@rehearsal_option
def plan(playbook: str, targets: TargetArgs, execution: ExecutionArgs, plan_format: str,
         plan_out: str | None, retry_failed: str | None, rehearsal: bool | None) -> int:
    """The dry-run audit of PLAYBOOK: the targets grouped by the findings and steps they
    would get (refused and those needing a human first), the API calls; the run's
    forecast. Changes nothing: mutating calls are refused in code."""
    return execute(RunRequest.from_args(playbook, targets, execution, dry_run=True, yes=True,
                                        plan_format=plan_format, plan_out=plan_out,
                                        retry_failed=retry_failed, rehearsal=rehearsal))
