"""The IAM policy a state machine's role needs: its calls, and the actions' contracts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from remediate.export.items import read_statement
from remediate.language.model import Playbook
from remediate.permissions import permissions_for, playbook_actions

_SDK = "arn:aws:states:::aws-sdk:"
# A Distributed Map starts, watches and stops its child executions.
DISTRIBUTED_MAP = ("states:DescribeExecution", "states:StartExecution", "states:StopExecution")


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
                role_arn: str | None = None) -> dict[str, Any]:
    """The execution role's policy: the definition's calls plus what the playbook's
    actions declare (the same contracts ``remediate iam-policy`` prints), reading the
    batches from the definition's items bucket, assuming the target role ``role_arn``."""
    actions = set(sdk_calls(definition))
    actions.update(permissions_for(playbook_actions(playbook), playbook.targets.kind))
    by_service: dict[str, list[str]] = {}
    for action in sorted(actions):
        by_service.setdefault(action.split(":", 1)[0], []).append(action)
    statements: list[dict[str, Any]] = [
        {"Sid": f"Remediate{service.title().replace('-', '')}", "Effect": "Allow",
         "Action": names, "Resource": "*"}
        for service, names in sorted(by_service.items()) if service != "states"]
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
    return {"Version": "2012-10-17", "Statement": statements}
