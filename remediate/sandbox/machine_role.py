"""The identity a state machine's SDK calls are made with, on moto.

On AWS a state machine's SDK calls are made as its execution role, or as the role a
Task state's ``Credentials`` names (``--target-role-arn``)
(https://docs.aws.amazon.com/step-functions/latest/dg/procedure-create-iam-role.html;
https://docs.aws.amazon.com/step-functions/latest/dg/concepts-access-cross-acct-resources.html).
moto's interpreter signs every call with fixed credentials (``ak``), which moto's STS takes
for its default user: the calls of the machine would look like the operator's. The
sandbox gives each role a session of moto's STS instead (created in its backend, not by
an API call the run would see), so what judges the caller (EBS's KMS check on
AttachVolume, :mod:`remediate.sandbox.kms_access`) sees the role.
"""

from __future__ import annotations

import threading
from typing import Final

SESSION_NAME: Final = "remediate-state-machine"
_ROLES: Final[dict[str, str]] = {}
"""Access key id -> the role it is a session of: kept past a reset of moto's backends,
which forgets its sessions while a client signed with one may still be reused."""
_LOCK: Final = threading.Lock()


def credentials(role_arn: str, region: str) -> dict[str, str]:
    """boto3 credentials of a new session of ``role_arn``, in moto's STS of its account."""
    from moto.sts.models import sts_backends

    role = sts_backends[role_arn.split(":")[4]]["aws"].assume_role(
        region_name=region, role_session_name=SESSION_NAME, role_arn=role_arn, policy="",
        duration=43200, external_id="")
    with _LOCK:
        _ROLES[role.access_key_id] = role_arn
    return {"aws_access_key_id": role.access_key_id,
            "aws_secret_access_key": role.secret_access_key,
            "aws_session_token": role.session_token}


def role_of(access_key: str) -> str | None:
    """The role whose session :func:`credentials` made ``access_key`` (None: not one)."""
    with _LOCK:
        return _ROLES.get(access_key)
