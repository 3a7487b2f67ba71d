"""``--lock-table NAME``: the shared DynamoDB lease table of `run` and `resume`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from remediate.clock import Clock

if TYPE_CHECKING:
    from remediate.executor.leasing import TargetLeases

F = TypeVar("F", bound=Callable[..., Any])


def lock_table_option(func: F) -> F:
    option = click.option(
        "--lock-table", metavar="NAME",
        help="Also lease each target in this DynamoDB table (created on first use, in the "
             "default Region), so runs on other machines never work on the same target.")
    decorated: F = option(func)
    return decorated


def open_leases(table_name: str | None, factory: Any, run_id: str,
                clock: Clock) -> TargetLeases | None:
    """The run's leases in ``table_name`` (None: no shared table, the journal's lock only).
    The table is in the default account and Region of ``factory``."""
    if not table_name:
        return None
    from remediate.cli.launch import lookup
    from remediate.executor.leasing import TargetLeases
    from remediate.leases import LeaseTable, Owner

    table = LeaseTable(factory.client("dynamodb"), table_name, owner=Owner.current(run_id),
                       clock=clock, execution_status=execution_status(factory, clock))
    return TargetLeases(table, lookup(factory))


def execution_status(factory: Any, clock: Clock) -> Callable[[str], str]:
    """A Step Functions execution's status by ARN (in the ARN's Region), "MISSING" if it
    does not exist: how long the lease of a run on Step Functions holds."""
    from botocore.exceptions import ClientError

    from remediate.aws.retrying import RetryingClient

    def status(arn: str) -> str:
        sfn = RetryingClient(factory.client("stepfunctions", arn.split(":")[3]), clock)
        try:
            return str(sfn.describe_execution(executionArn=arn)["status"])
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ExecutionDoesNotExist":
                return "MISSING"  # the run stopped before StartExecution
            raise

    return status
