"""The KMS keys of encrypted root volumes are enabled and let the swap use them.

Moving an encrypted root volume to a rescue instance and back needs its key
``Enabled`` (KMS DescribeKey ``KeyState``: a ``Disabled`` or ``PendingDeletion`` key
cannot decrypt, https://docs.aws.amazon.com/kms/latest/developerguide/key-state.html),
and the operator allowed ``kms:CreateGrant`` and ``kms:Decrypt`` on it: EC2 attaches an
encrypted volume by creating a grant for the instance on the caller's behalf
(https://docs.aws.amazon.com/ebs/latest/userguide/ebs-encryption-requirements.html).

The key policy is read (GetKeyPolicy) and judged simply: both actions need an Allow
naming the operator, its account (``arn:aws:iam::ACCOUNT:root``, which delegates to
IAM: the role's own policy is then what decides, see the IAM check) or ``*``, and no
Deny without conditions naming them. Conditions on an Allow (``kms:ViaService``,
``kms:CallerAccount``: how AWS-managed ``aws/ebs`` keys are written) are taken as met,
conditions on a Deny as not met: a simplification that never reports a usable key as
unusable because of a condition it cannot evaluate. A grant (ListGrants) to the
operator with both operations also makes the key usable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from fnmatch import fnmatchcase
from typing import Any, Final

from remediate.readiness.check import Check, Settings, Verdict
from remediate.readiness.model import Rule
from remediate.readiness.principal import operator
from remediate.readiness.region import Region

ENABLED = Rule("kms-key-enabled", "The root volume's KMS key is enabled",
               "An encrypted root volume whose key is disabled or pending deletion cannot "
               "be attached to a rescue instance, nor the instance started.")
USABLE = Rule("kms-key-usable", "The operator may use the root volume's KMS key",
              "Attaching an encrypted volume to a rescue instance makes EC2 create a grant "
              "on the operator's behalf: without kms:CreateGrant and kms:Decrypt it fails.")
NEEDED: Final = ("kms:CreateGrant", "kms:Decrypt")
GRANT_OPERATIONS: Final = frozenset({"CreateGrant", "Decrypt"})


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _names(statement: Mapping[str, Any], principals: set[str]) -> bool:
    principal = statement.get("Principal")
    if principal == "*":
        return True
    named = _listed(principal.get("AWS")) if isinstance(principal, Mapping) else []
    return any(p == "*" or p in principals for p in named)


def _covers(statement: Mapping[str, Any], action: str) -> bool:
    return any(fnmatchcase(action.lower(), pattern.lower())
               for pattern in _listed(statement.get("Action")))


def policy_allows(policy: Mapping[str, Any], principals: set[str], action: str) -> bool:
    statements = policy.get("Statement", [])
    statements = [statements] if isinstance(statements, Mapping) else statements
    applying = [s for s in statements if _names(s, principals) and _covers(s, action)]
    if any(s.get("Effect") == "Deny" and not s.get("Condition") for s in applying):
        return False
    return any(s.get("Effect") == "Allow" for s in applying)


def _granted(region: Region, key: str, principal: str) -> bool:
    for page in region.pages("kms", "ListGrants", KeyId=key):
        for grant in page.get("Grants", []):
            if grant.get("GranteePrincipal") == principal \
                    and set(grant.get("Operations", [])) >= GRANT_OPERATIONS:
                return True
    return False


def _usable(region: Region, key: str, principal: str, account: str) -> list[str]:
    """The needed actions the operator may not use on ``key``."""
    policy = json.loads(str(region.call("kms", "GetKeyPolicy", KeyId=key,
                                        PolicyName="default")["Policy"]))
    principals = {principal, account, f"arn:aws:iam::{account}:root"}
    missing = [a for a in NEEDED if not policy_allows(policy, principals, a)]
    return missing if missing and not _granted(region, key, principal) else []


def run(region: Region, settings: Settings) -> Iterator[Verdict]:
    users: dict[str, list[str]] = {}  # key -> the instances whose root volume uses it
    for instance in region.instances:
        volume = region.root_volumes.get(instance.root_volume_id or "")
        if volume is not None and volume.encrypted and volume.kms_key_id:
            users.setdefault(volume.kms_key_id, []).append(instance.id)
    disabled, unusable = [], []
    principal, account = operator(region, settings.operator_arn) if users else ("", "")
    for key, instances in sorted(users.items()):
        some = f"{len(instances)} target{'s' if len(instances) > 1 else ''} " \
               f"({', '.join(instances[:3])}{', ...' if len(instances) > 3 else ''})"
        state = region.call("kms", "DescribeKey", KeyId=key)["KeyMetadata"].get("KeyState")
        if state != "Enabled":
            disabled.append(region.fail(
                ENABLED, key, f"KMS key {key} of the root volumes of {some} is {state}",
                "enable it (aws kms enable-key), or cancel its deletion (aws kms "
                "cancel-key-deletion, then enable-key)"))
            continue
        missing = _usable(region, key, principal, account)
        if missing:
            unusable.append(region.fail(
                USABLE, key, f"{principal} may not {' or '.join(missing)} with KMS key {key} "
                f"(root volumes of {some})",
                f"allow {principal} kms:CreateGrant and kms:Decrypt in the key policy "
                "(aws kms put-key-policy) or with a grant (aws kms create-grant)"))
    yield Verdict(ENABLED, len(users), disabled)
    yield Verdict(USABLE, len(users) - len(disabled), unusable)


CHECK = Check((ENABLED, USABLE), run)
