"""The state machine `run --engine stepfunctions` starts: exactly what `deploy` would create.

The run compiles the playbook with its own ``--param``, ``--accept``,
``--target-role-arn`` and ``--items-bucket`` values, as `deploy` does with the
same options, and uses the deployed machine only if its definition is that one;
with ``--role-arn`` it creates or updates the machine itself. Otherwise the
error gives the `deploy` command line that makes it right.

The machine's SDK calls, AttachVolume among them, are made as ``--target-role-arn`` when
given (every call assumes it), else as the machine's execution role: :func:`attacher`
names it, so the pre-flight judges KMS key access for it, not for the operator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from remediate.aws.principal import Attacher
from remediate.cli.exitcodes import UserError
from remediate.language.model import Playbook

if TYPE_CHECKING:
    from remediate.cli.launch import RunRequest
    from remediate.cli.stepfunctions_run import StepFunctionsOptions


def deploy_command(request: RunRequest, options: StepFunctionsOptions,
                   playbook: Playbook) -> str:
    """The `remediate deploy` command creating the machine this run needs."""
    parts = ["remediate deploy", playbook.source, "--role-arn ARN"]
    parts += [f"--param {key}={value}" for key, value in request.params.items()]
    parts += [f"--accept {kind}" for kind in sorted(request.accepted)]
    if options.target_role_arn:
        parts.append(f"--target-role-arn {options.target_role_arn}")
    if options.items_bucket:
        parts.append(f"--items-bucket {options.items_bucket}")
    if options.state_machine:
        parts.append(f"--name {options.state_machine}")
    parts += [f"--region {region}" for region in request.targets.regions[:1]]
    return " ".join(parts)


def state_machine(request: RunRequest, options: StepFunctionsOptions, playbook: Playbook,
                  definition: Mapping[str, Any], sfn: Any) -> str:
    """The ARN of a state machine running exactly ``definition``."""
    from remediate.export.deploy import deploy, is_current

    name = options.state_machine or playbook.name
    if options.role_arn:
        deployed = deploy(sfn, name, definition, options.role_arn, playbook.name)
        if deployed.change != "unchanged":
            click.echo(f"state machine {name} {deployed.change}: {deployed.arn}", err=True)
        return deployed.arn
    arn = _deployed(request, options, playbook, sfn)
    command = deploy_command(request, options, playbook)
    if not is_current(sfn, arn, definition):
        raise UserError(f"state machine {name} does not run this playbook with these --param, "
                        "--accept, --target-role-arn and --items-bucket values: deploy it "
                        f"again (`{command}`), or pass --role-arn")
    return arn


def _deployed(request: RunRequest, options: StepFunctionsOptions, playbook: Playbook,
              sfn: Any) -> str:
    """The ARN of the deployed machine (UserError: there is none)."""
    from remediate.export.deploy import find_state_machine

    name = options.state_machine or playbook.name
    arn = find_state_machine(sfn, name)
    if arn is None:
        raise UserError(f"no state machine {name}: deploy it first "
                        f"(`{deploy_command(request, options, playbook)}`), or pass --role-arn")
    return arn


def attacher(request: RunRequest, options: StepFunctionsOptions, playbook: Playbook,
             sfn: Any) -> Attacher:
    """The role the machine's AttachVolume calls are made as: ``--target-role-arn``; else
    ``--role-arn`` (the machine is created or updated with it); else the deployed
    machine's ``roleArn`` (DescribeStateMachine). No machine and no ``--role-arn``:
    UserError, before the pre-flight rather than after it."""
    if options.target_role_arn:
        return Attacher(options.target_role_arn, "the target role")
    if options.role_arn:
        return Attacher(options.role_arn, "the state machine's role")
    machine = sfn.describe_state_machine(
        stateMachineArn=_deployed(request, options, playbook, sfn))
    return Attacher(str(machine["roleArn"]), "the state machine's role")
