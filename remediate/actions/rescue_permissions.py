"""What the rescue actions may do in IAM terms: scoped to the rescue instances.

Rescue instances are launched tagged ``remediate:role=rescue`` (on the instance
and its volumes, see :mod:`remediate.actions.rescue_launch`), so a policy can let
the tool launch only instances so tagged, tag only what its own launch creates,
terminate only instances so tagged, attach to them only a root volume
``ec2.detach_root`` marked, and run the repair through SSM on no other instance.
A role is passed only when a rescue step names an ``instance_profile`` (only to
EC2): with no profile the policy has no ``iam:PassRole`` at all, since passing any
role to an instance the tool may then run commands on would hand the tool that
role. Encrypted volumes are used only through EC2 (the grant EC2 makes on the
caller's behalf when it attaches the volume).
"""

from __future__ import annotations

from typing import Final

from remediate.actions.rescue_launch import ROLE, ROLE_TAG
from remediate.actions.scoped import (
    Scoped,
    arn,
    created_by,
    ec2_arn,
    equals,
    is_true,
    like,
    request_tag,
    resource_tag,
)
from remediate.actions.ssm import sends_command
from remediate.actions.target_permissions import ATTACH_MARKED, DETACH_VOLUME

RESCUE_INSTANCE: Final = resource_tag(ROLE_TAG, ROLE)
# What RunInstances creates, tagged at launch; what it only uses (the image's root
# snapshot: a launch restores the root volume from it; no key pair is used).
_CREATED: Final = (ec2_arn("instance"), ec2_arn("volume"))
_USED: Final = tuple(ec2_arn(kind) for kind in (
    "image", "network-interface", "security-group", "snapshot", "subnet"))
_KEYS: Final = (arn("kms", "key/*"),)

LAUNCH: Final = (
    Scoped("ec2:RunInstances", _CREATED, (request_tag(ROLE_TAG, ROLE),)),
    Scoped("ec2:RunInstances", _USED),
    Scoped("ec2:CreateTags", _CREATED, (created_by("RunInstances"),)),
    # The rescue instance profile's role (its name is the operator's choice).
    Scoped("iam:PassRole", (arn("iam", "role/*", region=""),),
           (equals("iam:PassedToService", "ec2.amazonaws.com"),), needs="instance_profile"),
)


def on_rescue(action: str) -> Scoped:
    """``action`` on rescue instances only."""
    return Scoped(action, (ec2_arn("instance"),), (RESCUE_INSTANCE,), label="OnRescue")


TERMINATE: Final = on_rescue("ec2:TerminateInstances")
DETACH_FROM_RESCUE: Final = on_rescue("ec2:DetachVolume")
# A volume goes onto a rescue instance only if marked as a root (ATTACH_MARKED), and off it.
ON_RESCUE: Final = (on_rescue("ec2:AttachVolume"), ATTACH_MARKED, DETACH_FROM_RESCUE,
                    DETACH_VOLUME)
# Attaching an encrypted volume: EC2 creates a grant and decrypts for the caller.
ENCRYPTED_VOLUMES: Final = (
    Scoped("kms:CreateGrant", _KEYS, (is_true("kms:GrantIsForAWSResource"),)),
    Scoped("kms:Decrypt", _KEYS, (like("kms:ViaService", "ec2.*.amazonaws.com"),)),
)
ATTACH: Final = (*LAUNCH, TERMINATE, *ON_RESCUE, *ENCRYPTED_VOLUMES)
DETACH: Final = (TERMINATE, DETACH_FROM_RESCUE, DETACH_VOLUME)
REPAIR: Final = sends_command(RESCUE_INSTANCE, label="OnRescue")
