"""What the actions on the targets may do in IAM terms: only on the playbook's targets.

The targets are whatever the playbook selects, so each grant here on an instance
or a WorkSpace is ``on_targets``: the policy generator adds the targets' tag
conditions (``aws:ResourceTag`` from ``targets.tags`` and ``--tag``). A call
authorizes every resource it names (Service Authorization Reference for Amazon
EC2, https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html,
"Resource types" column): the target side of it is scoped to the targets; the
volume side of AttachVolume to a root volume ``ec2.detach_root`` marked before
detaching it (the only volumes remediate ever attaches anywhere); the rest by
ARN type, bounded by the scoped side of the same call.
"""

from __future__ import annotations

from typing import Final

from remediate.actions.ec2_inspect import ROOT_OF_TAG
from remediate.actions.scoped import (
    Condition,
    Scoped,
    absent,
    arn,
    created_by,
    ec2_arn,
    present,
    request_tag,
    resource_tag,
)

INSTANCES: Final = (ec2_arn("instance"),)
VOLUMES: Final = (ec2_arn("volume"),)
WORKSPACES: Final = (arn("workspaces", "workspace/*"),)
# A volume ec2.detach_root tagged as an instance's root before detaching it.
MARKED_ROOT: Final = present(f"aws:ResourceTag/{ROOT_OF_TAG}")
BACKUP_TAG: Final = ("remediate:purpose", "backup")


def on_instances(action: str, *conditions: Condition) -> Scoped:
    """``action`` on the playbook's target instances only."""
    return Scoped(action, INSTANCES, conditions, on_targets=True)


def on_workspaces(action: str) -> Scoped:
    """``action`` on the playbook's target WorkSpaces only (WorkSpaces' ``workspaceid``
    resource type takes ``aws:ResourceTag``)."""
    return Scoped(action, WORKSPACES, on_targets=True)


STOP: Final = on_instances("ec2:StopInstances")
START: Final = on_instances("ec2:StartInstances")
REBOOT: Final = on_instances("ec2:RebootInstances")
# DetachVolume authorizes the volume and the instance it leaves: the instance is a target
# (the rescue side is in rescue_permissions).
DETACH_VOLUME: Final = Scoped("ec2:DetachVolume", VOLUMES)
DETACH_FROM_TARGETS: Final = (on_instances("ec2:DetachVolume"), DETACH_VOLUME)
# AttachVolume authorizes the volume and the instance: a marked root volume, to a target.
ATTACH_MARKED: Final = Scoped("ec2:AttachVolume", VOLUMES, (MARKED_ROOT,), label="MarkedRoot")
ATTACH_TO_TARGETS: Final = (on_instances("ec2:AttachVolume"), ATTACH_MARKED)
# CreateSnapshot authorizes the volume (it only reads it: any volume, the root volume
# carries no tag of remediate's before the swap) and the new snapshot, which must be
# tagged a remediate backup; tagging it on create needs CreateTags as part of the call.
SNAPSHOT_BACKUP: Final = (
    Scoped("ec2:CreateSnapshot", VOLUMES),
    Scoped("ec2:CreateSnapshot", (ec2_arn("snapshot"),), (request_tag(*BACKUP_TAG),),
           label="Backup"),
    Scoped("ec2:CreateTags", (ec2_arn("snapshot"),), (created_by("CreateSnapshot"),)),
)
# ModifyInstanceAttribute parameters IAM sees as ec2:Attribute/NAME: the primitive ones and
# the AttributeValue objects holding only a Value (EC2 User Guide, "ec2:Attribute condition
# key", https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/iam-policies-for-amazon-ec2.html).
# remediate only ever sets BlockDeviceMappings (a root mapping's DeleteOnTermination), which
# has no key of its own (objects of several properties have none), so the policy allows
# the call only when none of the others is in the request: never user data (code run at
# next boot), instance type, kernel, termination or stop protection. EnclaveOptions and
# Groups have no key either; the statements name no security group, so a request that
# authorizes one (the security-group resource type: a change of groups) is refused.
SETTABLE_ATTRIBUTES: Final = (
    "DisableApiStop", "DisableApiTermination", "EbsOptimized", "EnaSupport",
    "InstanceInitiatedShutdownBehavior", "InstanceType", "Kernel", "Ramdisk",
    "SourceDestCheck", "SriovNetSupport", "UserData")
ONLY_BLOCK_DEVICE_MAPPINGS: Final = (
    absent("ec2:Attribute"), *(absent(f"ec2:Attribute/{name}") for name in SETTABLE_ATTRIBUTES))
# The instance side is required in every request, so its conditions bound the volume's.
DELETE_ON_TERMINATION: Final = (
    on_instances("ec2:ModifyInstanceAttribute", *ONLY_BLOCK_DEVICE_MAPPINGS),
    Scoped("ec2:ModifyInstanceAttribute", VOLUMES),
)
# CreateReplaceRootVolumeTask authorizes the instance, the task and the new root volume it
# creates, and the image or snapshot it restores from.
REPLACE_ROOT: Final = (
    on_instances("ec2:CreateReplaceRootVolumeTask"),
    Scoped("ec2:CreateReplaceRootVolumeTask", tuple(ec2_arn(kind) for kind in (
        "replace-root-volume-task", "volume", "image", "snapshot"))),
    Scoped("ec2:CreateTags", (ec2_arn("replace-root-volume-task"),),
           (created_by("CreateReplaceRootVolumeTask"),)),
)

# Capacity holds (remediate.actions.capacity_hold): a reservation is created only tagged a
# hold of remediate's (tags on create need CreateTags as part of the call); opened and
# cancelled only when it carries that tag. The holds are created before the stop, for the
# target's type and AZ: CreateCapacityReservation names no instance to scope to.
CAPACITY_RESERVATIONS: Final = (ec2_arn("capacity-reservation"),)
HOLD_ROLE: Final = ("remediate:role", "capacity-hold")
HELD: Final = resource_tag(*HOLD_ROLE)
HOLD: Final = (
    Scoped("ec2:CreateCapacityReservation", CAPACITY_RESERVATIONS, (request_tag(*HOLD_ROLE),),
           label="CapacityHold"),
    Scoped("ec2:CreateTags", CAPACITY_RESERVATIONS,
           (created_by("CreateCapacityReservation"),)),
)
RELEASE: Final = (
    Scoped("ec2:ModifyCapacityReservation", CAPACITY_RESERVATIONS, (HELD,), label="CapacityHold"),
    Scoped("ec2:CancelCapacityReservation", CAPACITY_RESERVATIONS, (HELD,), label="CapacityHold"),
)
