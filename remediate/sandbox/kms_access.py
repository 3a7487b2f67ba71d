"""Whether the caller of AttachVolume may use an encrypted volume's KMS key, as KMS decides
when EC2 asks on the caller's behalf.

EC2 needs the caller's ``kms:CreateGrant`` and ``kms:Decrypt`` on the key
(https://docs.aws.amazon.com/ebs/latest/userguide/ebs-encryption-requirements.html,
"Permissions for users"). KMS allows a principal a key's action when the key policy
allows it to that principal (or to anyone), or to its account (``arn:aws:iam::A:root``)
and the principal's IAM policy allows it too, or a grant to it gives the operation; an
explicit Deny of the key policy wins
(https://docs.aws.amazon.com/kms/latest/developerguide/control-access.html,
https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html).

Unlike the pre-flight's judgement (:mod:`remediate.actions.kms_access`, which takes an
Allow's conditions as met), the sandbox knows the request: conditions are evaluated
(:mod:`remediate.sandbox.iam_eval`) with ``kms:ViaService`` = ``ec2.REGION.amazonaws.com``,
``kms:GrantIsForAWSResource`` = true and ``kms:CallerAccount``. The IAM side is the
sandbox's enforced policy (``Sandbox.enforce_policy``); without one, IAM allows all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, Final

from remediate.actions.kms_access import NEEDED, named
from remediate.aws.principal import as_principal
from remediate.sandbox.iam_eval import Authorization, decide
from remediate.sandbox.state import World

CALLER: Final[ContextVar[str | None]] = ContextVar("sandbox_attach_caller", default=None)
"""The principal of the AttachVolume request being served (None: the sandbox itself)."""


def caller(account: str, region: str, access_key: str) -> str:
    """The principal behind ``access_key``, as STS GetCallerIdentity names it; a role's
    session: its role's ARN, path included, as a key policy names the role (a state
    machine's calls, :mod:`remediate.sandbox.machine_role`)."""
    from moto.sts.models import sts_backends

    from remediate.sandbox.machine_role import role_of

    backend = sts_backends[account]["aws"]
    session = backend.get_assumed_role_from_access_key(access_key)
    if session is not None:
        return str(session.role_arn)
    return role_of(access_key) or as_principal(
        backend.get_caller_identity(access_key, region)[1])


def _policy(statements: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Statements already chosen by principal, judged as an identity policy (without the
    Principal element, which :func:`~remediate.sandbox.iam_eval.decide` does not read)."""
    return {"Statement": [{k: v for k, v in s.items() if k != "Principal"}
                          for s in statements]}


def allows(world: World, key: Any, account: str, region: str, principal: str) -> bool:
    """Whether KMS lets ``principal`` use ``key`` (moto's key) for each action EC2 needs."""
    document = json.loads(key.policy)
    statements = document.get("Statement", [])
    statements = [statements] if isinstance(statements, Mapping) else list(statements)
    root = {account, f"arn:aws:iam::{account}:root"}
    direct = [s for s in statements if set(named(s)) & {principal, "*"}]
    delegated = [s for s in statements if set(named(s)) & root]
    granted = {f"kms:{operation}" for grant in key.grants.values()
               if grant.grantee_principal == principal for operation in grant.operations}
    for action in NEEDED:
        request = Authorization(action, str(key.arn), {
            "kms:ViaService": (f"ec2.{region}.amazonaws.com",),
            "kms:GrantIsForAWSResource": ("true",), "kms:CallerAccount": (account,)})
        if decide(_policy(direct + delegated), request) == "denied":
            return False
        if decide(_policy(direct), request) == "allowed" or action in granted:
            continue
        if decide(_policy(delegated), request) != "allowed" or (
                world.policy is not None and decide(world.policy, request) != "allowed"):
            return False
    return True
