"""Least-privilege IAM policies, generated from the actions' declared contracts.

Each step's action grants its permissions as :meth:`Action.grants` says (its
scoped permissions; the read-only others on ``*``). A grant on the playbook's
targets is bound to what selects them: one ``aws:ResourceTag`` condition per
``targets.tags`` key (``--tag`` replacing a key's values), and the targets' ARNs
when ``targets.ids`` names them, so the role can stop, detach or reboot only
instances so selected. A playbook selecting by neither (by filters only) can
select any instance, and its policy says so (:func:`unscoped_warning`).

A policy keeps the grants no other grant of it already allows, puts those on any
resource in one statement per service (the read-only calls), gives each scoped
grant a statement of its own, and ends with a Deny of what remediate promises
never to do: an explicit Deny wins over any Allow, also over those of other
policies attached to the same role.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from remediate.actions import registry
from remediate.actions.scoped import ANY, Condition, Scoped, only, present, resource_tag
from remediate.actions.target_permissions import INSTANCES
from remediate.claims.tag import CLAIM_TAG
from remediate.claims.tag_io import CLAIM_TAGS
from remediate.kinds import KINDS
from remediate.language.loader import bind_params
from remediate.language.model import Playbook, Step, TargetSelector
from remediate.language.template import as_references, substitute

VERSION: Final = "2012-10-17"
# What every run needs besides its steps: finding its targets.
DISCOVERY: dict[str, tuple[str, ...]] = {
    "ec2-instance": ("ec2:DescribeInstances",),
    "workspace": ("workspaces:DescribeWorkspaces", "workspaces:DescribeTags"),
}
# Never a customer volume, snapshot or WorkSpace deleted, whatever else the role may do.
NEVER: Final = ("ec2:DeleteSnapshot", "ec2:DeleteVolume", "workspaces:TerminateWorkspaces")

# `run --stop-on-alarm` reads its alarms (remediate.executor.alarm_watch), composite ones
# too: DescribeAlarms returns composite alarms only to a caller allowed it on "*"
# (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_DescribeAlarms.html).
ALARM_READ: Final = Scoped("cloudwatch:DescribeAlarms")

# Claims (remediate.claims): before its first mutating call on a target a run tags it
# CLAIM_TAG (ec2:CreateTags, workspaces:CreateTags) and removes the tag at its end
# (DeleteTags), so a second operator's run sees the target is taken. A playbook with a
# mutating step is granted CLAIMS[kind]: reading the tag (DescribeTags, a read on "*"),
# and writing it on its targets for that one tag key only (aws:TagKeys; Null, so a
# DeleteTags naming no key, which deletes every tag, is not allowed).
CLAIM_KEY_ONLY: Final = (only("aws:TagKeys", CLAIM_TAG), present("aws:TagKeys"))


def _claim_grants(kind: str) -> tuple[Scoped, ...]:
    reads = tuple(Scoped(action) for action in CLAIM_TAGS[kind].permissions
                  if ":Describe" in action)
    writes = [action for action in CLAIM_TAGS[kind].permissions if ":Describe" not in action]
    if kind == "ec2-instance":
        return (*reads, *(Scoped(action, INSTANCES, CLAIM_KEY_ONLY, on_targets=True,
                                 label="Claim") for action in writes))
    # The Service Authorization Reference lists no resource type for WorkSpaces' tagging
    # actions: they take "*", scoped by the tag key alone.
    return (*reads, *(Scoped(action, ANY, CLAIM_KEY_ONLY, label="Claim") for action in writes))


CLAIMS: Final[Mapping[str, tuple[Scoped, ...]]] = {
    kind: _claim_grants(kind) for kind in CLAIM_TAGS}
# Mutating actions AWS authorizes on "*" only (no resource-level permissions): each gets a
# statement of its own on "*", with conditions, and a Sid saying why.
NO_RESOURCE_LEVEL: Final = frozenset({"workspaces:CreateTags", "workspaces:DeleteTags"})
NO_RESOURCE_LEVEL_SID: Final = "NoResourceLevelPermissions"
READ_ONLY_PREFIXES: Final = ("Describe", "Get", "List")
# IAM quotas: a managed policy holds 6,144 characters, an inline one 10,240 (all of a role's
# together), whitespace not counted
# (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html).
MANAGED_POLICY_CHARACTERS: Final = 6144
INLINE_POLICY_CHARACTERS: Final = 10240
_WHAT: Final = {"ec2-instance": "EC2 instance", "workspace": "WorkSpace"}


def is_read_only(action: str) -> bool:
    """``ec2:DescribeInstances``-like: reads, changes nothing."""
    return action.split(":", 1)[1].startswith(READ_ONLY_PREFIXES)


def playbook_steps(playbook: Playbook, params: Mapping[str, Any] | None = None,
                   ) -> list[tuple[str, Mapping[str, Any]]]:
    """(action, ``with`` parameters) of the inspection and every step, rollback included,
    with the playbook's parameters put in: ``params`` (bound), else their defaults (so a
    rescue_instance_profile left empty passes no role)."""
    if params is None:
        params, _ = bind_params(playbook, {})
    known = as_references(params)
    steps: Sequence[Step] = (*playbook.steps, *playbook.rollback)
    return [(KINDS[playbook.targets.kind].inspect_action, {}),
            *((step.action, substitute(dict(step.params), known)) for step in steps)]


def _grants(steps: Iterable[tuple[str, Mapping[str, Any] | None]], kind: str,
            claims: bool = True) -> list[Scoped]:
    grants = [Scoped(name) for name in DISCOVERY.get(kind, ())]
    mutating = False
    for name, params in steps:
        action = registry.get(name)
        if action is not None:
            grants.extend(action.grants(params))
            mutating = mutating or action.mutating
    if mutating and claims:
        grants.extend(CLAIMS.get(kind, ()))
    return grants


def target_conditions(selector: TargetSelector) -> tuple[Condition, ...]:
    """What the selector's targets carry: each tag key (with one of its values, if any)."""
    return tuple(resource_tag(key, *values) for key, values in sorted(selector.tags.items()))


def playbook_grants(playbook: Playbook, selector: TargetSelector | None = None, *,
                    claims: bool = True,
                    params: Mapping[str, Any] | None = None) -> list[Scoped]:
    """The playbook's grants, those on its targets bound to ``selector``'s tags (default:
    the playbook's own ``targets``); with ``claims``, tagging its targets claimed (the
    local engine claims them; a Step Functions definition does not); ``params``: the
    run's bound parameters (default: the playbook's defaults)."""
    selector = selector or playbook.targets
    targets = target_conditions(selector)
    return [grant.bound(targets, selector.ids)
            for grant in _grants(playbook_steps(playbook, params), playbook.targets.kind,
                                 claims)]


def unscoped_warning(playbook: Playbook, selector: TargetSelector | None = None) -> str | None:
    """What a policy for a playbook selecting by no tag allows, in one line (None: it
    selects by tags or ids, and the policy is scoped to them)."""
    selector = selector or playbook.targets
    if selector.tags or selector.ids:
        return None
    unbound = sorted({grant.action for grant in _grants(playbook_steps(playbook),
                                                        playbook.targets.kind)
                      if grant.on_targets})
    if not unbound:
        return None
    what = _WHAT.get(playbook.targets.kind, playbook.targets.kind)
    return (f"{playbook.source} selects its targets by no tag (targets.tags) and no id "
            f"(targets.ids), so the policy allows {', '.join(unbound)} on every {what} in the "
            "account; give targets.tags or --tag KEY=VALUE (the tags the run selects by) to "
            "scope it to them")


def needed(grants: Iterable[Scoped]) -> list[Scoped]:
    """``grants`` less those another one already allows (and repeats), sorted."""
    unique = sorted(set(grants))
    return [grant for grant in unique
            if not any(other != grant and other.covers(grant) for other in unique)]


def allow_statements(grants: Iterable[Scoped]) -> list[dict[str, Any]]:
    """One statement per service for the grants on any resource; then one for each set of
    scoped grants on the same resources under the same conditions (the calls on the
    targets, those on rescue instances...), so the policy stays within IAM's size quota."""
    kept = needed(grants)
    by_service: dict[str, list[str]] = {}
    for grant in kept:
        if grant.broad:
            by_service.setdefault(_service(grant), []).append(grant.action)
    statements: list[dict[str, Any]] = [
        {"Sid": f"Remediate{_title(service)}", "Effect": "Allow", "Action": actions,
         "Resource": "*"}
        for service, actions in sorted(by_service.items())]
    groups: dict[tuple[tuple[str, ...], tuple[Condition, ...]], list[Scoped]] = {}
    for grant in kept:
        if not grant.broad:
            groups.setdefault((grant.resources, grant.conditions), []).append(grant)
    alike = list(groups.values())
    for group, sid in zip(alike, _sids(alike), strict=True):
        first = group[0]
        statement: dict[str, Any] = {
            "Sid": sid, "Effect": "Allow", "Action": sorted({g.action for g in group}),
            "Resource": "*" if first.resources == ANY else list(first.resources)}
        if first.conditions:
            statement["Condition"] = first.condition_block()
        statements.append(statement)
    return statements


def deny_statement() -> dict[str, Any]:
    """The promise, enforced by IAM: remediate never deletes these."""
    return {"Sid": "RemediateNeverDeletes", "Effect": "Deny", "Action": list(NEVER),
            "Resource": "*"}


def policy_document(playbook: Playbook, selector: TargetSelector | None = None, *,
                    stop_on_alarm: bool = False,
                    params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The policy a run of ``playbook`` needs, on the targets ``selector`` picks (default:
    the playbook's ``targets``; ``remediate iam-policy --tag`` narrows it as ``run``
    does); with ``stop_on_alarm``, reading the alarms ``run --stop-on-alarm`` watches;
    ``params``: the run's bound parameters (``--param``; default: the defaults)."""
    grants = playbook_grants(playbook, selector, params=params)
    if stop_on_alarm:
        grants.append(ALARM_READ)
    statements = allow_statements(grants)
    roles = sorted(a.role_arn for a in playbook.targets.accounts if a.role_arn)
    if roles:
        statements.append({"Sid": "RemediateAssumeRoles", "Effect": "Allow",
                           "Action": ["sts:AssumeRole"], "Resource": roles})
    statements.append(deny_statement())
    return {"Version": VERSION, "Statement": statements}


def size(policy: Mapping[str, Any]) -> int:
    """The policy's size as IAM counts it against its quotas (whitespace not counted)."""
    return len(re.sub(r"\s", "", json.dumps(policy)))


def size_warning(policy: Mapping[str, Any]) -> str | None:
    """Why the policy cannot be a managed policy, if it cannot (None: it fits)."""
    found = size(policy)
    if found <= MANAGED_POLICY_CHARACTERS:
        return None
    fits = (f"attach it inline (up to {INLINE_POLICY_CHARACTERS:,} for all of a role's) or "
            if found <= INLINE_POLICY_CHARACTERS else "")
    return (f"the policy is {found:,} characters, more than a managed policy holds "
            f"({MANAGED_POLICY_CHARACTERS:,}): {fits}select the targets by tags rather than "
            "by ids")


def _service(grant: Scoped) -> str:
    return grant.action.split(":", 1)[0]


def _title(service: str) -> str:
    return service.title().replace("-", "")


def _sids(groups: Sequence[Sequence[Scoped]]) -> list[str]:
    """``RemediateEc2TerminateInstances`` for one action, and what it is on if the grant
    says (its label: ``...RebootInstancesOnTargets``); an action granted several ways is
    named by the resource types of its ARNs otherwise (``...RunInstancesInstanceVolume``).
    Several actions are named by their service and what they are on
    (``RemediateEc2OnTargets``); then a number if need be. A mutating action on ``*`` says
    why (``...NoResourceLevelPermissions``)."""
    singles = Counter(group[0].action for group in groups if len(group) == 1)
    named = []
    for group in groups:
        first = group[0]
        services = {_service(g) for g in group}
        service = _title(services.pop()) if len(services) == 1 else ""
        on = first.label or _kinds(first)
        if len(group) == 1:
            operation = first.action.split(":", 1)[1]
            sid = f"Remediate{service}{operation}" + (
                first.label or (on if singles[first.action] > 1 else ""))
        else:
            sid = f"Remediate{service}{on}"
        named.append(sid + "".join(dict.fromkeys(_why_any(g) for g in group)))
    alike = Counter(named)
    seen: Counter[str] = Counter()
    sids = []
    for sid in named:
        seen[sid] += 1
        sids.append(sid if alike[sid] == 1 else f"{sid}{seen[sid]}")
    return sids


def _why_any(grant: Scoped) -> str:
    if grant.resources != ANY or is_read_only(grant.action):
        return ""
    if grant.action not in NO_RESOURCE_LEVEL:
        raise ValueError(f"{grant.action} is granted on any resource, but AWS supports "
                         "resource-level permissions for it: name its resources")
    return NO_RESOURCE_LEVEL_SID


def _kinds(grant: Scoped) -> str:
    """The resource types of the grant's ARNs, CamelCased: ``NetworkInterfaceSubnet``."""
    kinds = sorted({arn.split(":", 5)[5].split("/", 1)[0] for arn in grant.resources
                    if arn != "*"})
    return "".join(part.title() for kind in kinds for part in re.split(r"[-_]", kind))
