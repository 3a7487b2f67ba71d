"""Scoped permissions: an IAM action narrowed to resource ARNs and condition keys.

An action's ``permissions`` name every IAM action it needs; its
``scoped_permissions`` narrow some of them. A permission with no scoped entry is
granted on ``*`` (only the Describe/Get/List calls, most of which support no
resource-level permissions); one with scoped entries is granted only as they
say, each entry one policy statement. ``remediate iam-policy``, the Step
Functions role policy and ``remediate list-actions`` are generated from them.

A grant ``on_targets`` acts on the playbook's own targets: which instances or
WorkSpaces those are is the playbook's (``targets.tags``, ``--tag``), so the
policy generator adds their tag conditions (:meth:`Scoped.bound`). A grant that
``needs`` a step parameter is in the policy only when the step sets it (the rescue
instance profile's ``iam:PassRole``).

ARNs and condition keys are AWS's own (Service Authorization Reference,
https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html):
EC2 images and snapshots have no account in their ARN; IAM roles have no Region.
Conditions are checked when an entry is declared, so a misspelt key fails at
import, not in production.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

ANY: Final = ("*",)
# Condition operator -> how `remediate list-actions` says it.
OPERATORS: Final = {
    "StringEquals": "=",
    "StringLike": "like",
    "Bool": "is",
    "ForAllValues:StringEquals": "all in",
    "Null": "is",
}
# The condition keys the contracts may use; tag keys are known by their prefix.
CONDITION_KEYS: Final[frozenset[str]] = frozenset({
    "aws:TagKeys",  # the tag keys in the request
    "ec2:Attribute",  # ModifyInstanceAttribute's primitive Attribute parameter
    "ec2:CreateAction",  # the API creating the resource being tagged (tag on create)
    "iam:PassedToService",  # the service a role is passed to
    "kms:GrantIsForAWSResource",  # the grant is made by an AWS service for the caller
    "kms:ViaService",  # the AWS service calling KMS for the caller
})
TAG_KEY_PREFIXES: Final = ("aws:ResourceTag/", "aws:RequestTag/")
# Keys named by their prefix: tags, and the attribute a ModifyInstanceAttribute sets.
KEY_PREFIXES: Final = (*TAG_KEY_PREFIXES, "ec2:Attribute/")
_ACTION_RE: Final = re.compile(r"[a-z0-9-]+:[A-Z][A-Za-z0-9]+")
# arn:aws:SERVICE:REGION:ACCOUNT:RESOURCE (REGION and ACCOUNT may be empty).
_ARN_RE: Final = re.compile(r"arn:aws:[a-z0-9-]+:[a-z0-9*-]*:[0-9*]*:[A-Za-z0-9*/._:-]+")


def is_known_key(key: str) -> bool:
    return key in CONDITION_KEYS or any(
        key.startswith(prefix) and len(key) > len(prefix) for prefix in KEY_PREFIXES)


@dataclass(frozen=True, order=True)
class Condition:
    """One IAM condition: ``{operator: {key: values}}`` (any of the values; kept sorted).
    Several in a grant must all hold."""

    operator: str
    key: str
    values: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.operator not in OPERATORS:
            raise ValueError(f"condition operator {self.operator!r} is not one of "
                             f"{', '.join(sorted(OPERATORS))}")
        if not is_known_key(self.key):
            raise ValueError(f"condition key {self.key!r} is not a known AWS condition key "
                             f"({', '.join(sorted(CONDITION_KEYS))}, or "
                             f"{' or '.join(p + 'NAME' for p in KEY_PREFIXES)})")
        if not self.values:
            raise ValueError(f"condition on {self.key} has no values")
        if self.operator == "Null" and (len(self.values) != 1
                                        or self.values[0] not in ("true", "false")):
            raise ValueError(f"Null on {self.key} takes 'true' or 'false'")
        object.__setattr__(self, "values", tuple(sorted(set(self.values))))

    def value(self) -> str | list[str]:
        """The values as IAM JSON has them: one a string, several a list."""
        return self.values[0] if len(self.values) == 1 else list(self.values)

    def text(self) -> str:
        """``aws:ResourceTag/remediate:role = rescue``; ``aws:TagKeys all in [a, b]``;
        ``ec2:Attribute/UserData is absent``."""
        if self.operator == "Null":
            return f"{self.key} is {'absent' if self.values == ('true',) else 'present'}"
        said = (f"[{', '.join(self.values)}]" if self.operator.startswith("ForAllValues:")
                else " | ".join(self.values))
        return f"{self.key} {OPERATORS[self.operator]} {said}"


def equals(key: str, *values: str) -> Condition:
    return Condition("StringEquals", key, values)


def like(key: str, *values: str) -> Condition:
    return Condition("StringLike", key, values)


def is_true(key: str) -> Condition:
    return Condition("Bool", key, ("true",))


def only(key: str, *values: str) -> Condition:
    """Every value of the multi-valued ``key`` (e.g. aws:TagKeys) is one of ``values``."""
    return Condition("ForAllValues:StringEquals", key, values)


def present(key: str) -> Condition:
    """The request has ``key`` (e.g. ``aws:ResourceTag/team``: the resource has that tag)."""
    return Condition("Null", key, ("false",))


def absent(key: str) -> Condition:
    """The request has no ``key`` (e.g. ``ec2:Attribute/UserData``: it sets no user data)."""
    return Condition("Null", key, ("true",))


def resource_tag(tag: str, *values: str) -> Condition:
    """The resource acted on carries ``tag`` with one of ``values`` (none: any value)."""
    key = f"aws:ResourceTag/{tag}"
    return equals(key, *(_literal(v) for v in values)) if values else present(key)


def _literal(value: str) -> str:
    """``value`` as IAM reads it literally: ``${`` starts a policy variable, ``${$}`` is a
    dollar sign (IAM User Guide, "IAM policy elements: Variables and tags")."""
    return value.replace("$", "${$}") if "${" in value else value


def request_tag(tag: str, value: str) -> Condition:
    """The request tags what it creates with ``tag=value``."""
    return equals(f"aws:RequestTag/{tag}", value)


def created_by(api: str) -> Condition:
    """ec2:CreateTags only as part of ``api`` creating the resource (tag on create)."""
    return equals("ec2:CreateAction", api)


def arn(service: str, resource: str, *, region: str = "*", account: str = "*") -> str:
    """``arn:aws:SERVICE:REGION:ACCOUNT:RESOURCE``, any Region and account by default."""
    return f"arn:aws:{service}:{region}:{account}:{resource}"


def ec2_arn(resource_type: str) -> str:
    """Any EC2 resource of ``resource_type``; images and snapshots have no account."""
    account = "" if resource_type in ("image", "snapshot") else "*"
    return arn("ec2", f"{resource_type}/*", account=account)


@dataclass(frozen=True, order=True)
class Scoped:
    """An IAM action allowed on ``resources`` only, and only when all ``conditions`` hold.

    Resources and conditions are kept sorted, so two grants saying the same are equal.
    """

    action: str
    resources: tuple[str, ...] = ANY
    conditions: tuple[Condition, ...] = ()
    # Only on the playbook's targets: the policy adds their tag conditions (see bound).
    on_targets: bool = False
    # Only when the step sets this parameter (e.g. instance_profile: iam:PassRole).
    needs: str = ""
    # What the grant is on, for its statement's Sid (``OnTargets``, ``OnRescue``).
    label: str = ""

    def __post_init__(self) -> None:
        if not _ACTION_RE.fullmatch(self.action):
            raise ValueError(f"{self.action!r} is not an IAM action (service:Operation)")
        if not self.resources:
            raise ValueError(f"{self.action}: no resources")
        if "*" in self.resources and len(self.resources) > 1:
            raise ValueError(f"{self.action}: '*' already names every resource")
        for resource in self.resources:
            if resource != "*" and not _ARN_RE.fullmatch(resource):
                raise ValueError(f"{self.action}: {resource!r} is not an ARN "
                                 "(arn:aws:SERVICE:REGION:ACCOUNT:RESOURCE)")
        if self.on_targets and self.resources == ANY:
            raise ValueError(f"{self.action}: on the targets names their resource type's ARN")
        if self.label and not self.label.isalnum():
            raise ValueError(f"{self.action}: label {self.label!r} is not alphanumeric")
        if self.on_targets and not self.label:
            object.__setattr__(self, "label", "OnTargets")
        keys = [(c.operator, c.key) for c in self.conditions]
        if len(set(keys)) != len(keys):
            raise ValueError(f"{self.action}: a condition key is given twice")
        object.__setattr__(self, "resources", tuple(sorted(set(self.resources))))
        object.__setattr__(self, "conditions", tuple(sorted(set(self.conditions))))

    @property
    def broad(self) -> bool:
        """Granted on any resource, unconditionally."""
        return self.resources == ANY and not self.conditions and not self.on_targets

    def bound(self, targets: tuple[Condition, ...], ids: tuple[str, ...] = ()) -> Scoped:
        """This grant as a policy states it: ``on_targets`` replaced by ``targets``, the
        conditions the playbook's targets meet (their tags), and by their ``ids`` when it
        names them (none of either: any resource of the grant's types)."""
        if not self.on_targets:
            return self
        resources = (tuple(f"{r.rsplit('/', 1)[0]}/{i}" for r in self.resources for i in ids)
                     if ids else self.resources)
        return Scoped(self.action, resources, (*self.conditions, *targets), label=self.label)

    def covers(self, other: Scoped) -> bool:
        """Whether this grant allows all ``other`` does: the same action on at least its
        resources, under at most its conditions."""
        return (self.action == other.action
                and (self.resources == ANY or set(other.resources) <= set(self.resources))
                and set(self.conditions) <= set(other.conditions)
                and (other.on_targets or not self.on_targets))

    def condition_block(self) -> dict[str, dict[str, Any]]:
        """The statement's ``Condition``: operator -> key -> value(s)."""
        block: dict[str, dict[str, Any]] = {}
        for condition in self.conditions:
            block.setdefault(condition.operator, {})[condition.key] = condition.value()
        return block

    def describe(self) -> dict[str, Any]:
        """As ``remediate list-actions --format json`` shows it."""
        described: dict[str, Any] = {"action": self.action, "resources": list(self.resources),
                                     "conditions": self.condition_block()}
        if self.on_targets:
            described["on_targets"] = True
        if self.needs:
            described["needs"] = self.needs
        return described

    def text(self) -> str:
        """One line: the action, on what, and when."""
        where = "any resource" if self.resources == ANY else ", ".join(self.resources)
        if self.on_targets:
            where += " of the playbook's targets (their tags)"
        when = " and ".join(c.text() for c in self.conditions)
        said = f"{self.action} on {where}" + (f" if {when}" if when else "")
        return said + (f" (only with {self.needs})" if self.needs else "")
