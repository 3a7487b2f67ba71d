"""`remediate export` and `remediate deploy`: a playbook as an AWS Step Functions state machine."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import click

from remediate.cli import exitcodes
from remediate.cli.exitcodes import UserError
from remediate.cli.options import parse_params
from remediate.cli.playbook_arg import load_or_fail
from remediate.findings import ACKNOWLEDGEABLE
from remediate.language.model import Playbook

ENGINES = ("stepfunctions",)


@dataclass(frozen=True)
class Compiled:
    playbook: Playbook
    params: dict[str, Any]
    definition: dict[str, Any]
    # The role every SDK call assumes (the playbook's one account with a role, or
    # --target-role-arn); None: the state machine's own role.
    target_role_arn: str | None
    items_bucket: str | None = None  # the batches are read from this S3 bucket


def compile_or_fail(playbook_path: str, params: Mapping[str, str],
                    accepted: frozenset[str] = frozenset(),
                    target_role_arn: str | None = None,
                    items_bucket: str | None = None) -> Compiled:
    """Load, bind and compile; every problem a :class:`UserError` (one line, exit 1)."""
    from remediate.export import NotExportable, compile_playbook
    from remediate.language.loader import bind_params

    playbook = load_or_fail(playbook_path)
    bound, errors = bind_params(playbook, params)
    if errors:
        raise UserError("; ".join(errors))
    accounts = playbook.targets.accounts
    role = target_role_arn or (accounts[0].role_arn if len(accounts) == 1 else None)
    try:
        definition = compile_playbook(playbook, bound, role_arn=role, accepted=accepted,
                                      items_bucket=items_bucket)
    except NotExportable as exc:
        raise UserError(str(exc)) from None
    return Compiled(playbook, bound, definition, role, items_bucket)


def warn_dropped(playbook: Playbook, *, judged_by_run: bool = False,
                 rate_limits: Mapping[str, object] | None = None) -> None:
    """One warning line on stderr per feature of the playbook that does not export."""
    from remediate.export.dropped import dropped

    for line in dropped(playbook, judged_by_run=judged_by_run, rate_limits=rate_limits):
        click.echo(f"warning: {line}", err=True)


def size_line(compiled: Compiled) -> str:
    from remediate.export import definition_size

    return f"{compiled.playbook.name}: {definition_size(compiled.definition)}"


def _engine_option(func: Any) -> Any:
    return click.option("--engine", type=click.Choice(ENGINES), default="stepfunctions",
                        show_default=True, help="Where the playbook is to run.")(func)


def items_bucket_option(func: Any) -> Any:
    return click.option(
        "--items-bucket", metavar="BUCKET",
        help="Each batch's targets are read from this S3 bucket (Distributed Map ItemReader; "
             "`run --engine stepfunctions` writes them there): for more targets than an "
             "execution's input holds (about 3,700). Same account and Region as the "
             "machine.")(func)


def target_role_option(*names: str) -> Callable[[Any], Any]:
    return click.option(
        *(names or ("--target-role-arn",)), "target_role_arn", metavar="ARN",
        help="A role every AWS call of the machine assumes (targets in another account; "
             "default: the playbook's account role, if any).")


def _compile_options(func: Any) -> Any:
    func = items_bucket_option(func)
    func = click.option("--accept", "accepted", multiple=True, type=click.Choice(ACKNOWLEDGEABLE),
                        help="Accept a destructive finding the machine would otherwise refuse "
                             "(repeatable).")(func)
    return click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
                        help="Set a playbook parameter (repeatable); bound into the "
                             "definition.")(func)


@click.command(epilog=exitcodes.EPILOG)
@click.argument("playbook", type=click.Path(dir_okay=False))
@_engine_option
@_compile_options
@target_role_option()
@click.option("-o", "--output", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write the definition here instead of standard output.")
def export(playbook: str, engine: str, params: tuple[str, ...], accepted: tuple[str, ...],
           items_bucket: str | None, target_role_arn: str | None, output: str | None) -> int:
    """Compile PLAYBOOK into an Amazon States Language definition (JSON).

    Its size and number of states go to standard error, after a warning for each
    feature of the playbook that does not export. A playbook that uses something
    Step Functions cannot run fails here, naming it (exit 1).
    """
    compiled = compile_or_fail(playbook, parse_params(params), frozenset(accepted),
                               target_role_arn, items_bucket)
    warn_dropped(compiled.playbook)
    document = json.dumps(compiled.definition, indent=2) + "\n"
    if output:
        from remediate.reporters.files import write_atomically

        write_atomically(output, document)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(document, nl=False)
    click.echo(size_line(compiled), err=True)
    return exitcodes.OK


@click.command(epilog=exitcodes.EPILOG)
@click.argument("playbook", type=click.Path(dir_okay=False))
@_engine_option
@_compile_options
@click.option("--role-arn", metavar="ARN", required=True,
              help="The state machine's execution role (it needs the policy printed).")
@target_role_option()
@click.option("--name", metavar="NAME", help="The state machine's name (default: the "
                                             "playbook's name).")
@click.option("--region", metavar="REGION",
              help="Where to deploy (default: the playbook's one Region, else AWS_REGION).")
@click.option("--profile", metavar="NAME", help="AWS profile (default: AWS_PROFILE).")
def deploy(playbook: str, engine: str, params: tuple[str, ...], accepted: tuple[str, ...],
           items_bucket: str | None, role_arn: str, target_role_arn: str | None,
           name: str | None, region: str | None, profile: str | None) -> int:
    """Create or update PLAYBOOK's state machine; print its ARN, then (as JSON) the IAM
    policy its execution role needs, from the actions' contracts.

    `run --engine stepfunctions` uses the machine only if it was deployed with the
    same --param, --accept, --target-role-arn and --items-bucket values."""
    compiled = compile_or_fail(playbook, parse_params(params), frozenset(accepted),
                               target_role_arn, items_bucket)
    warn_dropped(compiled.playbook)
    sfn = stepfunctions_client(compiled.playbook, region, profile)
    from remediate.export import role_policy
    from remediate.export.deploy import deploy as deploy_machine

    deployed = deploy_machine(sfn, name or compiled.playbook.name, compiled.definition,
                              role_arn, compiled.playbook.name)
    click.echo(f"{size_line(compiled)}; state machine {deployed.change}", err=True)
    click.echo(deployed.arn)
    policy = role_policy(compiled.playbook, compiled.definition, state_machine_arn=deployed.arn,
                         role_arn=compiled.target_role_arn, params=compiled.params)
    click.echo(f"the role {role_arn} needs this policy:", err=True)
    click.echo(json.dumps(policy, indent=2))
    return exitcodes.OK


def stepfunctions_client(playbook: Playbook, region: str | None, profile: str | None,
                         run_id: str = "deploy") -> Any:
    """A Step Functions client in the machine's Region, from the command's Environment."""
    from remediate.aws.clients import ClientFactory
    from remediate.cli import launch
    from remediate.language.model import Account

    env = launch.Environment()
    accounts = (Account("default", profile=profile),) if profile else ()
    factory = ClientFactory(accounts, run_id=run_id, session=env.session,
                            endpoint_url=env.endpoint_url)
    regions = playbook.targets.regions
    return factory.client("stepfunctions", region or (regions[0] if regions else None))
