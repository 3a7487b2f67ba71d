"""Target kinds and the facts remediate learns about each target before any step.

Facts are gathered by the kind's inspect action during pre-flight; playbooks read
them as ``${{ target.<fact> }}`` and in ``when`` conditions, so the validator
checks references against this list.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True)
class TargetKind:
    name: str
    summary: str
    inspect_action: str
    facts: MappingProxyType[str, str]
    # What "already healthy" means for it: the reason a run skips such a target.
    healthy: str


_COMMON = {
    "id": "the target's id",
    "region": "its AWS Region",
    "account": "the account label (profile or role) it was found with",
    "state": "its state when inspected",
    "tags": "its tags, as a mapping",
}

KINDS: Final = MappingProxyType(
    {
        "ec2-instance": TargetKind(
            "ec2-instance",
            "an EC2 instance",
            "ec2.inspect",
            MappingProxyType({
                **_COMMON,
                "availability_zone": "its Availability Zone",
                "instance_type": "its instance type",
                "platform": "'windows' or 'linux'",
                "image_id": "the AMI it was launched from",
                "root_device_name": "the root device name, e.g. /dev/sda1",
                "root_volume_id": "the EBS volume attached at the root device",
                "root_delete_on_termination": "the root volume's DeleteOnTermination flag",
                "root_encrypted": "whether the root volume is encrypted",
                "kms_key_id": "the root volume's KMS key, if encrypted",
                "kms_key_usable": "whether that key is enabled (None when unknown)",
                "kms_key_access": "whether the caller may use that key through EC2 (key "
                                  "policy and grants; None when not judged)",
                "lifecycle": "'on-demand', 'spot' or 'scheduled'",
                "spot_request_type": "'one-time' or 'persistent' for Spot instances",
                "product_codes": "Marketplace product codes on the instance",
                "hibernation": "whether hibernation is configured",
                "stop_protection": "whether DisableApiStop is set",
                "instance_store": "whether the instance has instance-store volumes",
                "public_ip": "its public IPv4 address, if any",
                "has_elastic_ip": "whether that address is an Elastic IP",
                "status": "status checks in one word: ok, impaired, initializing, not-running",
                "rescue_image_id": "the rescue AMI in its Region: rescue_image_id, or the AMI "
                                   "its resolve:ssm: parameter names there (None: not read, "
                                   "or it names none)",
                "rescue_image_state": "the rescue AMI's state in its Region (available, pending, "
                                      "'not found', ...; 'unresolved: WHY' when the "
                                      "resolve:ssm: parameter names no AMI there), when the "
                                      "playbook launches rescue instances (None: not read)",
                "rescue_ssm": "how rescue instances of its account and Region would reach SSM "
                              "when the playbook launches them: 'instance-profile: NAME', "
                              "'dhmc: ROLE' (Default Host Management Configuration), 'none', "
                              "or 'unknown: WHY' (None: not read)",
            }),
            healthy="status checks pass",
        ),
        "workspace": TargetKind(
            "workspace",
            "an Amazon WorkSpace (Personal)",
            "workspaces.inspect",
            MappingProxyType({
                **_COMMON,
                "directory_id": "its directory",
                "bundle_id": "its bundle",
                "user_name": "the user it belongs to",
                "computer_name": "its computer name",
                "running_mode": "ALWAYS_ON or AUTO_STOP",
            }),
            healthy="AVAILABLE: WorkSpaces' health checks pass",
        ),
    }
)

KIND_NAMES: Final = tuple(KINDS)
