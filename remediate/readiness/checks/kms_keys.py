"""The KMS keys of encrypted root volumes are enabled and let the swap use them.

Moving an encrypted root volume to a rescue instance and back needs its key
``Enabled`` (KMS DescribeKey ``KeyState``: a ``Disabled`` or ``PendingDeletion`` key
cannot decrypt, https://docs.aws.amazon.com/kms/latest/developerguide/key-state.html),
and the operator allowed ``kms:CreateGrant`` and ``kms:Decrypt`` on it: EC2 attaches an
encrypted volume by creating a grant for the instance on the caller's behalf
(https://docs.aws.amazon.com/ebs/latest/userguide/ebs-encryption-requirements.html).

The key policy is read (GetKeyPolicy), and the grants (ListGrants) when it alone does
not allow, and judged by :mod:`remediate.actions.kms_access` (the judgement ``plan`` and
``run`` make before a stop). A key policy that leaves the key to IAM (it names the
account) passes here: the ``iam-policy-granted`` check judges the role's own policy.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from remediate.actions import kms_access
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


def _usable(region: Region, key: str, principal: str, account: str) -> tuple[str, ...]:
    """The needed actions the operator may not use on ``key``."""
    policy = json.loads(str(region.call("kms", "GetKeyPolicy", KeyId=key,
                                        PolicyName="default")["Policy"]))
    grants = [] if all(kms_access.policy_allows(policy, principal, account, action)
                       for action in kms_access.NEEDED) else [
        grant for page in region.pages("kms", "ListGrants", KeyId=key)
        for grant in page.get("Grants", [])]
    access = kms_access.judge(key, principal, account, policy, grants)
    return access.actions if access.verdict == "denied" else ()


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
