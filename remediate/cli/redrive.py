"""`remediate resume EXECUTION_ARN`: redrive a failed Step Functions execution.

RedriveExecution restarts a failed, timed out or aborted execution from the
states that did not succeed (for a Distributed Map: its failed items only). This
command checks the execution can be redriven, redrives it, and follows its
status until it ends (not its Map Runs: which targets a redrive re-ran is not
mapped to per-target events). moto 5.2.5 does not implement RedriveExecution; the
sandbox adds it (:mod:`remediate.sandbox.stepfunctions`: it re-runs the execution
from its start).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import click

from remediate.cli import exitcodes
from remediate.cli.exitcodes import UserError

REDRIVABLE: Final = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})


def is_execution_arn(text: str) -> bool:
    parts = text.split(":")
    return len(parts) >= 8 and parts[:3] == ["arn", "aws", "states"] and parts[5] == "execution"


def refuse_journal_options(given: Mapping[str, object]) -> None:
    """A redrive is followed by its status only: options for resuming a journal (reports,
    progress, leases...) would be silently ignored, so they are refused."""
    used = [name for name, value in given.items() if value is not None and value != ()]
    if used:
        raise UserError(f"resume EXECUTION_ARN redrives the execution and follows its status "
                        f"only: {', '.join(used)} {'is' if len(used) == 1 else 'are'} for "
                        "resuming a journal")


def _error(exc: Any) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")


def redrive(arn: str) -> int:
    from botocore.exceptions import ClientError

    from remediate.aws.clients import ClientFactory
    from remediate.aws.retrying import RetryingClient
    from remediate.cli import launch
    from remediate.cli.stepfunctions_run import pause_for
    from remediate.export.follow import RUNNING

    env = launch.Environment()
    factory = ClientFactory(run_id="redrive", session=env.session, endpoint_url=env.endpoint_url)
    sfn = RetryingClient(factory.client("stepfunctions", arn.split(":")[3]), env.clock)
    try:
        status = sfn.describe_execution(executionArn=arn)["status"]
    except ClientError as exc:
        raise UserError(f"execution {arn}: {_error(exc)}") from None
    if status not in REDRIVABLE:
        raise UserError(f"execution {arn} is {status}: only a failed, timed out or aborted "
                        "execution can be redriven")
    try:
        redriven = sfn.redrive_execution(executionArn=arn)
    except NotImplementedError:  # moto, in process
        raise UserError("this Step Functions endpoint does not implement RedriveExecution "
                        "(moto does not): nothing was redriven") from None
    except ClientError as exc:
        raise UserError(f"cannot redrive {arn}: {_error(exc)}") from None
    click.echo(f"redriven {arn} at {redriven.get('redriveDate')}; following it", err=True)
    pause = pause_for(env.clock)
    while (found := sfn.describe_execution(executionArn=arn))["status"] == RUNNING:
        pause()
    if found["status"] == "SUCCEEDED":
        click.echo(f"execution {arn} succeeded", err=True)
        return exitcodes.OK
    click.echo(f"execution {arn} ended {found['status']}: {found.get('error')}: "
               f"{found.get('cause')}", err=True)
    return exitcodes.TARGETS_FAILED
