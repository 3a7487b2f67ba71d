"""IAM's SimulatePrincipalPolicy, which moto lacks (NotImplementedError).

AWS's policy simulator (https://docs.aws.amazon.com/IAM/latest/APIReference/
API_SimulatePrincipalPolicy.html) evaluates every policy of a user or role for each
action and resource asked about, with the request context the caller supplies
(``ContextEntries``), and answers ``allowed``, ``explicitDeny`` or ``implicitDeny``
per (action, resource). The sandbox evaluates the principal's inline and attached
managed policies (default version) with :mod:`remediate.sandbox.iam_eval`, the
evaluator that also judges requests under ``Sandbox.enforce_policy``.

Simplified: identity-based policies only (no permissions boundary, session policy,
SCP or resource policy; the ``PolicyInputList`` and ``ResourcePolicy`` parameters are
ignored), groups' policies of a user are not included, and no ``MatchedStatements``
or ``MissingContextValues`` are listed. Resources default to ``*``, as on AWS.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from moto.core.responses import ActionResult
from moto.iam.responses import IamResponse

from remediate.sandbox.iam_eval import Authorization, decide
from remediate.sandbox.patcher import Patcher

DECISIONS: Final = {"allowed": "allowed", "denied": "explicitDeny", "not allowed": "implicitDeny"}


def _documents(response: Any, source: str) -> list[Mapping[str, Any]]:
    """The identity-based policies of the role or user ``source`` names."""
    backend = response.backend
    principal = backend.get_user(source.rsplit("/", 1)[-1]) if ":user/" in source \
        else backend.get_role_by_arn(source)
    texts = list(principal.policies.values())
    for managed in principal.managed_policies.values():
        texts.extend(v.document for v in managed.versions if v.is_default_version)
    return [json.loads(text) for text in texts]


def _context(entries: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, ...]]:
    return {str(e["ContextKeyName"]): tuple(str(v) for v in e.get("ContextKeyValues", []))
            for e in entries}


def decision(documents: list[Mapping[str, Any]], authorization: Authorization) -> str:
    found = {decide(document, authorization) for document in documents}
    for verdict in ("denied", "allowed"):
        if verdict in found:
            return DECISIONS[verdict]
    return DECISIONS["not allowed"]


def install(patcher: Patcher) -> None:
    def simulate_principal_policy(self: Any) -> ActionResult:
        documents = _documents(self, str(self._get_param("PolicySourceArn")))
        context = _context(self._get_param("ContextEntries", []) or [])
        results = [{"EvalActionName": action, "EvalResourceName": resource,
                    "EvalDecision": decision(documents, Authorization(action, resource,
                                                                      context))}
                   for action in self._get_param("ActionNames", [])
                   for resource in self._get_param("ResourceArns", []) or ["*"]]
        return ActionResult({"EvaluationResults": results, "IsTruncated": False})

    patcher.set(IamResponse, "simulate_principal_policy", simulate_principal_policy)
