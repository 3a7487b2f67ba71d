"""Which EC2 instances register with SSM (become managed nodes), as in AWS.

An instance's SSM Agent registers it with Systems Manager only when it has credentials
to: from its instance profile, whose role must allow the agent's calls (the AWS managed
policy AmazonSSMManagedInstanceCore;
https://docs.aws.amazon.com/systems-manager/latest/userguide/setup-instance-permissions.html),
or, without one, from Default Host Management Configuration, when it is on in the
instance's account and Region
(https://docs.aws.amazon.com/systems-manager/latest/userguide/fleet-manager-default-host-management-configuration.html).
An instance with neither never shows in DescribeInstanceInformation and takes no
command, however long it runs.

Not modelled: DHMC's own requirements on the instance (IMDSv2, SSM Agent 3.2.582.0 or
later; remediate's rescue instances require IMDSv2).
"""

from __future__ import annotations

from typing import Any, Final

from remediate.sandbox.ssm_settings import dhmc_role
from remediate.sandbox.state import World

SSM_CORE_POLICY: Final = "AmazonSSMManagedInstanceCore"
SSM_CORE_DOCUMENT: Final = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Resource": "*",
    "Action": ["ssm:DescribeAssociation", "ssm:GetDocument", "ssm:DescribeDocument",
               "ssm:ListAssociations", "ssm:ListInstanceAssociations",
               "ssm:UpdateInstanceInformation", "ssm:UpdateInstanceAssociationStatus",
               "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
               "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
               "ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage",
               "ec2messages:FailMessage", "ec2messages:GetEndpoint",
               "ec2messages:GetMessages", "ec2messages:SendReply"]}]}
"""What AmazonSSMManagedInstanceCore lets the agent do (its core actions), for roles
made in the sandbox, where moto has no AWS managed policies."""
# An action of the agent's that only a policy letting it register allows.
AGENT_ACTIONS: Final = ("ssm:UpdateInstanceInformation", "ssm:*", '"*"')


def is_registered(world: World, instance: Any) -> bool:
    """Whether ``instance`` (moto's) is a managed node: its profile lets the agent
    register, or DHMC is on where it runs."""
    backend = instance.ec2_backend
    association = backend.iam_instance_profile_associations.get(instance.id)
    if association is not None and _profile_allows_agent(association.iam_instance_profile):
        return True
    return dhmc_role(world, backend.account_id, backend.region_name) is not None


def _profile_allows_agent(profile: Any) -> bool:
    for role in getattr(profile, "roles", []) or []:
        for arn, policy in role.managed_policies.items():
            if arn.endswith(f"/{SSM_CORE_POLICY}") or _allows_agent(_document(policy)):
                return True
        if any(_allows_agent(str(doc)) for doc in role.policies.values()):
            return True
    return False


def _document(policy: Any) -> str:
    for version in getattr(policy, "versions", []):
        if getattr(version, "is_default", False):
            return str(version.document)
    return ""


def _allows_agent(document: str) -> bool:
    return any(action in document for action in AGENT_ACTIONS)
