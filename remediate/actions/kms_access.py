"""Whether a principal may use a KMS key through EC2: the one judgement of key policies
and grants, for ``remediate readiness`` (``kms-key-usable``) and for ``plan``/``run``
(``kms-key-denied``, ``kms-key-unchecked``) before a target is stopped.

Attaching an encrypted volume makes EC2 call KMS on the caller's behalf: the caller
needs ``kms:CreateGrant`` (AWS recommends it scoped with ``kms:GrantIsForAWSResource``)
and ``kms:Decrypt`` on the volume's key, among the actions EBS encryption lists
(https://docs.aws.amazon.com/ebs/latest/userguide/ebs-encryption-requirements.html,
"Permissions for users"). Only the key policy lets a principal use a key, directly or
by naming the account (``arn:aws:iam::ACCOUNT:root``), which delegates to the
principal's IAM policies; a grant lets it too; an explicit Deny wins over every Allow
(https://docs.aws.amazon.com/kms/latest/developerguide/control-access.html,
https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html).

The key policy is judged simply. Conditions on an Allow (``kms:ViaService``,
``kms:CallerAccount``: how AWS-managed ``aws/ebs`` keys are written) are taken as met,
conditions on a Deny as not met: a simplification that never calls a usable key
denied because of a condition it cannot evaluate. A key policy that delegates to IAM
is not judged further here (IAM policies are not read): ``unchecked``.

:func:`check` yields its requests (GetCallerIdentity, GetKeyPolicy, ListGrants only
when the key policy alone does not allow) so the executor paces, retries and logs
them; :func:`judge` is the pure judgement both callers share.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Final, Literal

from remediate.actions.optional_reads import optional
from remediate.actions.requests import Call, StepFailed
from remediate.actions.scoped import Scoped, arn
from remediate.actions.shared_answers import Steps
from remediate.aws.principal import as_principal

NEEDED: Final = ("kms:CreateGrant", "kms:Decrypt")
"""What EC2 needs of the caller to attach a volume encrypted with the key."""
READS: Final = ("kms:GetKeyPolicy", "kms:ListGrants")
GRANTS: Final = tuple(Scoped(read, (arn("kms", "key/*"),)) for read in READS)
"""What reading a key's policy and grants needs: on keys only."""

Standing = Literal["allowed", "iam", "denied", "none"]
"""One action under the key policy: allowed to the principal (or anyone); allowed to its
account, so IAM decides; denied by a Deny; or allowed by no statement."""
Verdict = Literal["allowed", "denied", "unchecked"]


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def named(statement: Mapping[str, Any]) -> list[str]:
    """The principals a key policy statement names (``*``: anyone)."""
    principal = statement.get("Principal")
    if principal == "*":
        return ["*"]
    return _listed(principal.get("AWS")) if isinstance(principal, Mapping) else []


def _covers(statement: Mapping[str, Any], action: str) -> bool:
    return any(fnmatchcase(action.lower(), pattern.lower())
               for pattern in _listed(statement.get("Action")))


def _statements(policy: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = policy.get("Statement", [])
    return [statements] if isinstance(statements, Mapping) else list(statements)


def standing(policy: Mapping[str, Any], principal: str, account: str,
             action: str) -> Standing:
    """How the key policy treats ``principal`` (of ``account``) asking for ``action``."""
    root = {account, f"arn:aws:iam::{account}:root"}
    found: set[Standing] = set()
    for statement in _statements(policy):
        names = set(named(statement))
        if not _covers(statement, action) or not names & {principal, "*", *root}:
            continue
        if statement.get("Effect") == "Deny":
            if not statement.get("Condition"):
                return "denied"
        elif names & {principal, "*"}:
            found.add("allowed")
        elif statement.get("Effect") == "Allow":
            found.add("iam")
    return "allowed" if "allowed" in found else "iam" if "iam" in found else "none"


def policy_allows(policy: Mapping[str, Any], principal: str, account: str,
                  action: str) -> bool:
    """The key policy lets ``principal`` use ``action``, itself or through IAM."""
    return standing(policy, principal, account, action) in ("allowed", "iam")


def granted(grants: Iterable[Mapping[str, Any]], principal: str) -> frozenset[str]:
    """The actions (``kms:Decrypt``...) the grants give ``principal``."""
    return frozenset(f"kms:{operation}" for grant in grants
                     if grant.get("GranteePrincipal") == principal
                     for operation in grant.get("Operations") or ())


@dataclass(frozen=True)
class KeyAccess:
    """Whether ``principal`` may use ``key`` through EC2.

    ``allowed``; ``denied`` (``actions``: what it may not; ``why``: by a Deny or by no
    statement); ``unchecked`` (``why``: what could not be judged, and how it could)."""

    verdict: Verdict
    key: str
    principal: str = ""
    actions: tuple[str, ...] = ()
    why: str = ""
    role: str = ""  # what the principal is to the run ("the state machine's role"; "": the caller)

    def fact(self) -> dict[str, Any]:
        """The journaled fact (JSON)."""
        fact = {"verdict": self.verdict, "key": self.key, "principal": self.principal,
                "actions": list(self.actions), "why": self.why}
        return {**fact, "role": self.role} if self.role else fact

    @classmethod
    def from_fact(cls, fact: Any) -> KeyAccess | None:
        if not isinstance(fact, Mapping) or fact.get("verdict") not in (
                "allowed", "denied", "unchecked"):
            return None
        return cls(fact["verdict"], str(fact.get("key")), str(fact.get("principal") or ""),
                   tuple(fact.get("actions") or ()), str(fact.get("why") or ""),
                   str(fact.get("role") or ""))

    @property
    def who(self) -> str:
        """Whose access was judged, as a message names it."""
        who = self.principal or "the operator"
        return f"{self.role} {who}" if self.role and self.principal else who


def judge(key: str, principal: str, account: str, policy: Mapping[str, Any],
          grants: Iterable[Mapping[str, Any]] | None) -> KeyAccess:
    """The verdict on ``policy`` and ``grants`` (None: they could not be listed)."""
    standings = {action: standing(policy, principal, account, action) for action in NEEDED}
    refused = tuple(a for a, s in standings.items() if s == "denied")
    if refused:
        return KeyAccess("denied", key, principal, refused, "a Deny statement of the key "
                         "policy refuses it (a Deny wins over any Allow or grant)")
    missing = tuple(a for a, s in standings.items() if s == "none")
    if missing and grants is None:
        return KeyAccess("unchecked", key, principal, missing,
                         "the key policy does not allow it, and whether a grant does could "
                         f"not be read (ListGrants refused): grant {READS[1]} on the key")
    given = granted(grants or (), principal)
    missing = tuple(a for a in missing if a not in given)
    if missing:
        return KeyAccess("denied", key, principal, missing,
                         "no statement of the key policy allows it, and no grant does")
    delegated = tuple(a for a, s in standings.items() if s == "iam" and a not in given)
    if delegated:
        return KeyAccess("unchecked", key, principal, delegated,
                         f"the key policy leaves it to IAM policies (it allows "
                         f"arn:aws:iam::{account}:root), which a run does not read: "
                         "`remediate readiness` checks them (iam:SimulatePrincipalPolicy)")
    return KeyAccess("allowed", key, principal)


def statement(principal: str, region: str) -> str:
    """The key policy statement that lets ``principal`` attach volumes through EC2."""
    return json.dumps({
        "Effect": "Allow", "Principal": {"AWS": principal}, "Action": list(NEEDED),
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:ViaService": f"ec2.{region}.amazonaws.com"}}})


def refusal(volume: str, target: str, region: str, access: KeyAccess) -> str:
    """Why a target whose root ``volume`` is encrypted with the key is refused."""
    fix = ("remove that Deny for it" if access.why.startswith("a Deny") else
           f"add to the key policy (aws kms put-key-policy): "
           f"{statement(access.principal, region)}")
    return (f"root volume {volume} of {target} is encrypted with KMS key {access.key}, "
            f"which {access.who} may not use through EC2 ({', '.join(access.actions)}: "
            f"{access.why}), so it could not be attached to a rescue instance: {fix}")


def warning(access: KeyAccess) -> str:
    """The one line for ``unchecked``."""
    actions = f" ({', '.join(access.actions)})" if access.actions else ""
    return (f"could not check that {access.who} may use KMS key {access.key} through EC2"
            f"{actions}: {access.why}")


def caller() -> Steps:
    """(the caller's principal ARN, its account id), or None when STS cannot tell."""
    try:
        identity = yield from optional(Call("sts", "GetCallerIdentity", {}, note="who attaches"))
    except StepFailed:
        return None
    if identity is None:
        return None
    return as_principal(str(identity["Arn"])), str(identity["Account"])


def _grants(key: str, principal: str) -> Steps:
    """Every grant of ``key`` to ``principal``, or None when they cannot be listed."""
    found: list[Mapping[str, Any]] = []
    params: dict[str, Any] = {"KeyId": key, "GranteePrincipal": principal}
    while True:
        page = yield from optional(Call("kms", "ListGrants", dict(params), note=f"grants of {key}"))
        if page is None:
            return None
        found.extend(page.get("Grants") or [])
        if not page.get("Truncated") or not page.get("NextMarker"):
            return found
        params["Marker"] = page["NextMarker"]


def check(key: str, who: tuple[str, str] | None, region: str) -> Steps:
    """The :class:`KeyAccess` of ``who`` (principal, account; None: unknown) to ``key``;
    ``unchecked`` when KMS does not answer (an outage must not refuse a target)."""
    try:
        return (yield from _check(key, who, region))
    except StepFailed as exc:
        return KeyAccess("unchecked", key, who[0] if who else "", NEEDED, str(exc))


def _check(key: str, who: tuple[str, str] | None, region: str) -> Steps:
    if who is None:
        return KeyAccess("unchecked", key, why="STS GetCallerIdentity did not say who the "
                         "caller is")
    principal, account = who
    answer = yield from optional(Call("kms", "GetKeyPolicy",
                                      {"KeyId": key, "PolicyName": "default"},
                                      note=f"key policy of {key}"))
    if answer is None:
        return KeyAccess("unchecked", key, principal, NEEDED,
                         f"GetKeyPolicy was refused: grant {READS[0]} and {READS[1]} on "
                         f"{arn('kms', 'key/*', region=region)}")
    policy = json.loads(str(answer.get("Policy") or "{}"))
    standings = {standing(policy, principal, account, a) for a in NEEDED}
    if standings == {"allowed"} or "denied" in standings:
        return judge(key, principal, account, policy, ())
    return judge(key, principal, account, policy, (yield from _grants(key, principal)))
