"""Where the offline repair finds a BitLocker-locked volume's recovery key.

The repair script runs on the rescue instance, which reads the key itself from the
escrow the playbook names (its instance profile grants it: ``ssm:GetParameter`` or
``secretsmanager:GetSecretValue``, and ``kms:Decrypt`` on the key that encrypts it).
remediate only ever handles the key's *name*, never the key: it is not in an API call
the tool makes, the journal, a report, or the SSM command's parameters (the script gets
the reference, ``$BitLockerKeys``, and fetches the key on the instance).

A reference is ``ssm:NAME`` (a SecureString parameter of Parameter Store) or
``secretsmanager:ID`` (a secret whose string is the key), in the target's Region, with
``{instance_id}`` and/or ``{volume_id}`` where the target's instance id or the volume id
goes (one recovery key per volume:
https://learn.microsoft.com/windows/security/operating-system-security/data-protection/bitlocker/recovery-overview).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from remediate.actions.program import TARGET_ID, Fmt
from remediate.language.schema import Field, Str

PLACEHOLDERS: Final = ("{instance_id}", "{volume_id}")
# Names Parameter Store and Secrets Manager accept, which need no quoting beyond the
# shell's quotes (so the reference may be set as a plain script variable): letters,
# digits and / _ . - + = @ (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_PutParameter.html,
# https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_CreateSecret.html).
_REFERENCE: Final = r"(?:ssm|secretsmanager):[A-Za-z0-9/_.+=@{}-]{1,500}"
SCHEMES: Final = ("ssm:", "secretsmanager:")

FIELD = Field(
    Str(pattern=f"|{_REFERENCE}", pattern_name="empty, or ssm:NAME or secretsmanager:ID "
                                                "with {instance_id} or {volume_id} in it",
        min_len=0, max_len=520, templated=True),
    default="",
    description="where the rescue instance reads the recovery key of a BitLocker-locked "
                "volume: ssm:/bitlocker/{instance_id} (a SecureString) or "
                "secretsmanager:bitlocker/{volume_id}; read on the rescue instance, never "
                "by remediate; empty: a locked volume fails its repair")


def problem(reference: Any) -> str | None:
    """Why ``reference`` cannot name one key per volume (None: it can, or it is unset)."""
    if not isinstance(reference, str) or not reference or "${{" in reference:
        return None
    braces = re.sub("|".join(map(re.escape, PLACEHOLDERS)), "", reference)
    if "{" in braces or "}" in braces:
        return (f"{reference}: only {PLACEHOLDERS[0]} and {PLACEHOLDERS[1]} may stand in "
                "braces")
    if not any(p in reference for p in PLACEHOLDERS):
        return (f"{reference} names one key for every volume: put {PLACEHOLDERS[0]} or "
                f"{PLACEHOLDERS[1]} in it (each BitLocker volume has its own recovery key)")
    return None


def reference(params: Mapping[str, Any], volume: Any) -> Fmt:
    """The reference of ``volume``'s key, as the script receives it."""
    parts: list[Any] = []
    for piece in re.split(r"(\{instance_id\}|\{volume_id\})", str(params["bitlocker_keys"])):
        if piece == "{instance_id}":
            parts.append(TARGET_ID)
        elif piece == "{volume_id}":
            parts.append(volume)
        elif piece:
            parts.append(piece)
    return Fmt(*parts)


def name_of(reference: str, instance_id: str, volume_id: str) -> tuple[str, str]:
    """(scheme, name) of the key ``reference`` names for this instance and volume:
    ("ssm", "/bitlocker/i-0abc") or ("secretsmanager", "bitlocker/vol-0abc")."""
    scheme, _, name = reference.partition(":")
    return scheme, name.replace("{instance_id}", instance_id).replace("{volume_id}", volume_id)
