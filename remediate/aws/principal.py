"""The IAM principal behind a caller's ARN.

STS GetCallerIdentity answers a role's session as
``arn:aws:sts::A:assumed-role/ROLE/SESSION``; policies (key policies among them) name
the role, ``arn:aws:iam::A:role/ROLE`` (a role with a path is named with it: only IAM
knows the path, so :class:`Attacher` takes a role's ARN as given).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

_SESSION: Final = re.compile(r"arn:(aws[\w-]*):sts::(\d{12}):assumed-role/([^/]+)/.+")


def as_principal(arn: str) -> str:
    """The role an assumed-role session ARN stands for; any other ARN as it is."""
    session = _SESSION.fullmatch(arn)
    if session is None:
        return arn
    partition, account, role = session.groups()
    return f"arn:{partition}:iam::{account}:role/{role}"


@dataclass(frozen=True)
class Attacher:
    """The identity that will call AttachVolume when it is not the operator (who runs the
    pre-flight): on Step Functions, the state machine's execution role, or the target role
    every SDK call of the machine assumes.

    ``arn`` is the role's IAM ARN with its path (``arn:aws:iam::A:role/PATH/NAME``, as
    ``--role-arn``, ``--target-role-arn`` and DescribeStateMachine's ``roleArn`` give it):
    a key policy names a role by that ARN, path included. AWS: the key policy's
    "Principal" element,
    https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html;
    "IAM role principals",
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html;
    a role's ARN holds its path,
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html.
    A session of the role (``arn:aws:sts::A:assumed-role/NAME/SESSION``) does not say the
    path, so the role's ARN is taken as given, never rebuilt from a session."""

    arn: str
    role: str  # what it is to the run, for messages: "the state machine's role"

    @property
    def account(self) -> str:
        """The role's account: a key policy naming ``arn:aws:iam::ACCOUNT:root`` leaves
        the role's access to its IAM policies."""
        return self.arn.split(":")[4]
