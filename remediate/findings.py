"""Pre-flight finding kinds: what can go wrong for a target, and how much it matters.

``block``: the target is refused; nothing the operator says changes that (the
hint says what would). ``ack``: the target is refused unless the operator accepts
the risk with ``--accept KIND`` (data loss). ``info``: reported, never refused.

A finding matters to a playbook only when one of its actions declares it among its
``risks`` (instance-store data is lost only if something stops the instance); only
then is it reported, unless it says what the target is (``about_target``: not
Windows, already healthy).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

Severity = Literal["block", "ack", "info"]


@dataclass(frozen=True)
class FindingKind:
    name: str
    severity: Severity
    summary: str
    hint: str = ""
    # Says what the target is, whatever the playbook does to it (shown for every
    # playbook); the others are shown only where an action of the playbook risks them.
    about_target: bool = False


@dataclass(frozen=True)
class Finding:
    kind: str
    detail: str

    @property
    def severity(self) -> Severity:
        return FINDINGS[self.kind].severity


FINDINGS: Final = MappingProxyType({f.name: f for f in (
    FindingKind("instance-store-data-loss", "ack",
                "instance-store volumes are erased when the instance stops",
                "use playbooks/ec2-replace-root-volume.yaml (keeps instance store), or "
                "--accept instance-store-data-loss"),
    FindingKind("spot-one-time", "block", "a one-time Spot instance cannot be stopped",
                "use root-volume replacement, which works on a running instance"),
    FindingKind("spot-persistent", "ack",
                "a persistent Spot instance whose root volume is detached is terminated "
                "by EC2 if it tries to start", "--accept spot-persistent"),
    FindingKind("stop-protection", "block", "stop protection (DisableApiStop) blocks the stop",
                "turn it off first: aws ec2 modify-instance-attribute --no-disable-api-stop"),
    FindingKind("kms-key-unusable", "block",
                "the root volume is encrypted with a KMS key that is not enabled",
                "enable the key (or cancel its deletion) and grant the caller and rescue "
                "instance kms:Decrypt/CreateGrant"),
    FindingKind("kms-key-denied", "block",
                "the root volume's KMS key policy and grants do not let the caller use the key "
                "through EC2: the volume could not be attached to a rescue instance",
                "add the key policy statement the detail gives (aws kms put-key-policy), or a "
                "grant of CreateGrant and Decrypt (aws kms create-grant)"),
    FindingKind("kms-key-unchecked", "info",
                "whether the caller may use the root volume's KMS key through EC2 could not be "
                "judged (key policy or grants not readable, or left to IAM policies)",
                "grant kms:GetKeyPolicy and kms:ListGrants on the key; run `remediate "
                "readiness` to judge IAM policies"),
    FindingKind("marketplace-product-code", "block",
                "the instance carries an AWS Marketplace product code; its root volume may "
                "not attach to another instance", "use root-volume replacement instead"),
    FindingKind("rescue-image-unusable", "block",
                "the rescue AMI (rescue_image_id) does not exist, or is not available, in the "
                "target's Region, or its resolve:ssm: parameter names none there: no rescue "
                "instance could be launched",
                "set rescue_image_id to an available AMI of that Region (aws ec2 "
                "describe-images --image-ids AMI --region REGION), or to "
                "resolve:ssm:PARAMETER naming one in every Region (aws ssm get-parameter "
                "--name PARAMETER --region REGION)"),
    FindingKind("rescue-unmanageable", "block",
                "rescue instances would never be managed by SSM (no instance profile, and "
                "Default Host Management Configuration is off): the repair could not run",
                "--param rescue_instance_profile=PROFILE (its role with the AWS managed policy "
                "AmazonSSMManagedInstanceCore), or turn on Default Host Management "
                "Configuration in that account and Region (Systems Manager, Fleet Manager)"),
    FindingKind("rescue-ssm-unchecked", "info",
                "whether rescue instances would be managed by SSM could not be checked "
                "(GetServiceSetting refused)",
                "grant ssm:GetServiceSetting on arn:aws:ssm:REGION:ACCOUNT:servicesetting/ssm/"
                "managed-instance/default-ec2-instance-management-role"),
    FindingKind("hibernation-enabled", "info",
                "hibernation is configured (older guides restrict snapshots of such roots)"),
    FindingKind("same-ami-rescue", "ack",
                "the rescue instance would run the same AMI as the target: disk-signature "
                "collision can leave the volume unbootable",
                "set rescue_image_id to a different Windows version, or --accept same-ami-rescue"),
    FindingKind("public-ip-will-change", "info",
                "the public IPv4 address changes on stop/start (no Elastic IP)"),
    FindingKind("not-windows", "info", "the instance is not Windows; the channel-file fix "
                "does not apply", about_target=True),
    FindingKind("already-healthy", "info", "already healthy (an instance passes its status "
                "checks, a WorkSpace is AVAILABLE); steps that would change it are skipped",
                about_target=True),
    FindingKind("root-replacement-data-loss", "ack",
                "replacing the root volume discards what was written after the chosen snapshot",
                "--accept root-replacement-data-loss"),
    FindingKind("workspace-restore-data-loss", "ack",
                "restoring a WorkSpace loses up to 12 hours of user data (back to the last "
                "healthy snapshot)", "--accept workspace-restore-data-loss"),
    FindingKind("workspace-rebuild-data-loss", "ack",
                "rebuilding a WorkSpace recreates the root volume from the bundle image and "
                "the user volume from its last snapshot", "--accept workspace-rebuild-data-loss"),
)})

FINDING_NAMES: Final = tuple(FINDINGS)
ACKNOWLEDGEABLE: Final = tuple(name for name, f in FINDINGS.items() if f.severity == "ack")
