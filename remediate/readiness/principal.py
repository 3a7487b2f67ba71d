"""Who the operator is: the IAM principal readiness judges permissions for.

By default the identity readiness runs as (STS GetCallerIdentity); ``--operator-arn``
names another (the role the runs use, when CI checks with a read-only one): in each
account, the role or user of that name there (a remediation role is deployed under one
name in every account, as with StackSets). An
assumed-role session ARN (``arn:aws:sts::A:assumed-role/ROLE/SESSION``) stands for
its role (``arn:aws:iam::A:role/ROLE``): policies name roles, not sessions.
"""

from __future__ import annotations

from remediate.aws.principal import as_principal
from remediate.readiness.region import Region


def operator(region: Region, given: str | None) -> tuple[str, str]:
    """(the operator's principal ARN in the scope's account, that account's id)."""
    identity = region.call("sts", "GetCallerIdentity")
    account = str(identity["Account"])
    if given is None:
        return as_principal(str(identity["Arn"])), account
    parts = as_principal(given).split(":", 5)
    return ":".join([*parts[:4], account, *parts[5:]]), account
