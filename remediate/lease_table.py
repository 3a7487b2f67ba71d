"""The DynamoDB table of :mod:`remediate.leases`, created on first use.

One item per lease key (hash key ``pk``), on-demand billing, DynamoDB TTL on
``expires_at`` (housekeeping: leases expire by their ``expires_at`` either way).
Two runs creating it at once is fine: the loser waits for the winner's table.
"""

from __future__ import annotations

import contextlib
from typing import Any, Final

from botocore.exceptions import ClientError

from remediate.clock import Clock

_ACTIVE_POLLS: Final = 120


def ensure_table(client: Any, table: str, clock: Clock) -> None:
    """Create ``table`` if it does not exist, and wait (on ``clock``) until it is ACTIVE."""
    created = False
    try:
        status = client.describe_table(TableName=table)["Table"]["TableStatus"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        status, created = _create(client, table)
    for _ in range(_ACTIVE_POLLS):
        if status == "ACTIVE":
            break
        clock.sleep(1.0)
        status = client.describe_table(TableName=table)["Table"]["TableStatus"]
    else:
        raise TimeoutError(f"DynamoDB table {table} is still {status}")
    if created:
        with contextlib.suppress(ClientError):
            client.update_time_to_live(TableName=table, TimeToLiveSpecification={
                "Enabled": True, "AttributeName": "expires_at"})


def _create(client: Any, table: str) -> tuple[str, bool]:
    """(status, whether this call created it)."""
    try:
        created = client.create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            Tags=[{"Key": "remediate:purpose", "Value": "target leases"}])["TableDescription"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":  # created meanwhile
            raise
        return str(client.describe_table(TableName=table)["Table"]["TableStatus"]), False
    return str(created["TableStatus"]), True
