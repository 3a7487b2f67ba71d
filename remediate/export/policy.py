"""The IAM policy a state machine's role needs: the actions' contracts, and its calls."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from remediate.actions.scoped import Scoped
from remediate.export.items import read_statement
from remediate.language.model import Playbook
from remediate.permissions import (
    VERSION,
    allow_statements,
    deny_statement,
    is_read_only,
    playbook_grants,
)

_SDK = "arn:aws:states:::aws-sdk:"
# A Distributed Map starts, watches and stops its child executions.
DISTRIBUTED_MAP = ("states:DescribeExecution", "states:StartExecution", "states:StopExecution")
# What IAM also checks when a call is made (Service Authorization Reference, "Dependent
# actions", and tagging on create): passing the rescue profile's role, tagging what the
# call creates, EC2 using an encrypted volume's key.
DEPENDENT: Final[Mapping[str, tuple[str, ...]]] = {
    "ec2:RunInstances": ("iam:PassRole", "ec2:CreateTags"),
    "ec2:CreateSnapshot": ("ec2:CreateTags",),
    "ec2:CreateReplaceRootVolumeTask": ("ec2:CreateTags",),
    "ec2:AttachVolume": ("kms:CreateGrant", "kms:Decrypt"),
}


def sdk_calls(definition: Mapping[str, Any]) -> list[str]:
    """``ec2:StopInstances``-style IAM actions of every SDK Task in the definition."""
    return sorted(set(_calls(definition)))


def _calls(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        resource = value.get("Resource")
        if value.get("Type") == "Task" and isinstance(resource, str) and resource.startswith(
                _SDK):
            service, operation = resource[len(_SDK):].split(".", 1)[0].split(":", 1)
            yield f"{service}:{operation[0].upper()}{operation[1:]}"
        for item in value.values():
            yield from _calls(item)
    elif isinstance(value, list):
        for item in value:
            yield from _calls(item)


def item_buckets(definition: Mapping[str, Any]) -> list[str]:
    """The S3 buckets the definition's Maps read their items from."""
    readers = [state["ItemReader"] for state in definition["States"].values()
               if "ItemReader" in state]
    return sorted({reader["Parameters"]["Bucket"] for reader in readers})


def role_policy(playbook: Playbook, definition: Mapping[str, Any], *,
                state_machine_arn: str | None = None,
                role_arn: str | None = None,
                params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The execution role's policy: only what the definition calls. Of the playbook's
    grants (the scoped statements ``remediate iam-policy`` prints), those of its SDK calls
    and of what IAM checks with them; each other (read-only) SDK call on any resource; the
    Distributed Map's child executions, the batches in the definition's items bucket,
    assuming the target role ``role_arn``; and the same Deny. A mutating call no action
    declares is refused: it would be on any resource. ``params``: those bound into the
    definition (a rescue_instance_profile passes a role)."""
    calls = sdk_calls(definition)
    wanted = {*calls, *(needed for call in calls for needed in DEPENDENT.get(call, ()))}
    grants = [grant for grant in playbook_grants(playbook, claims=False, params=params)
              if grant.action in wanted]
    granted = {grant.action for grant in grants}
    undeclared = [call for call in calls if call not in granted]
    mutating = [call for call in undeclared
                if not is_read_only(call) and not call.startswith("states:")]
    if mutating:
        raise ValueError(f"the definition calls {', '.join(mutating)}, which no action of "
                         f"{playbook.source} declares: declare it in the action's "
                         "scoped_permissions")
    grants += [Scoped(call) for call in undeclared]
    statements = allow_statements(g for g in grants if not g.action.startswith("states:"))
    machine = state_machine_arn or "*"
    executions = (machine.replace(":stateMachine:", ":execution:") + ":*"
                  if state_machine_arn else "*")
    statements.append({"Sid": "RemediateDistributedMap", "Effect": "Allow",
                       "Action": list(DISTRIBUTED_MAP),
                       "Resource": sorted({machine, executions})})
    if role_arn:
        statements.append({"Sid": "RemediateAssumeTargetRole", "Effect": "Allow",
                           "Action": ["sts:AssumeRole"], "Resource": [role_arn]})
    statements.extend(read_statement(bucket) for bucket in item_buckets(definition))
    statements.append(deny_statement())
    return {"Version": VERSION, "Statement": statements}
