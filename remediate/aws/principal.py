"""The IAM principal behind a caller's ARN.

STS GetCallerIdentity answers a role's session as
``arn:aws:sts::A:assumed-role/ROLE/SESSION``; policies (key policies among them) name
the role, ``arn:aws:iam::A:role/ROLE``.
"""

from __future__ import annotations

import re
from typing import Final

_SESSION: Final = re.compile(r"arn:(aws[\w-]*):sts::(\d{12}):assumed-role/([^/]+)/.+")


def as_principal(arn: str) -> str:
    """The role an assumed-role session ARN stands for; any other ARN as it is."""
    session = _SESSION.fullmatch(arn)
    if session is None:
        return arn
    partition, account, role = session.groups()
    return f"arn:{partition}:iam::{account}:role/{role}"
