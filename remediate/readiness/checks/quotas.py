"""Quota headroom: vCPUs for the rescue pool, and EBS snapshots for one backup per target.

- ``ec2`` ``L-1216C47A``, Running On-Demand Standard (A, C, D, H, I, M, R, T, Z)
  instances, counts vCPUs of running instances of those families
  (https://docs.aws.amazon.com/ec2/latest/instancetypes/ec2-instance-quotas.html).
  The offline repair launches, per Availability Zone with targets, one rescue
  instance per :data:`SLOTS` targets up to the playbook's ``max_per_az``: those vCPUs
  must fit on top of the instances running now (or RunInstances fails with
  ``VcpuLimitExceeded`` in the middle of the incident). A family is the letters
  before the first digit; ``inf``, ``dl``, ``trn``, ``hpc`` and ``mac`` have
  quotas of their own, though they start with a standard letter.
- ``ebs`` ``L-309BACF6``, Snapshots per Region: the account's own snapshots plus one
  backup per target (https://docs.aws.amazon.com/general/latest/gr/ebs-service.html).

Values come from Service Quotas GetServiceQuota (the applied value).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from typing import Final

from remediate.actions.rescue_launch import SLOTS
from remediate.readiness.check import Check, Settings, Verdict
from remediate.readiness.model import Rule
from remediate.readiness.region import Region, chunks, state_of

VCPUS = Rule("vcpu-quota-headroom", "vCPU quota leaves room for the rescue pool",
             "Rescue instances count against the Running On-Demand Standard instances "
             "quota: without headroom their launch fails during the incident.")
SNAPSHOTS = Rule("snapshot-quota-headroom", "Snapshot quota leaves room for the backups",
                 "Every offline repair snapshots the root volume first: without headroom "
                 "the backups, and so the repairs, fail.")
VCPU_QUOTA: Final = ("ec2", "L-1216C47A")
SNAPSHOT_QUOTA: Final = ("ebs", "L-309BACF6")
STANDARD_LETTERS: Final = frozenset("acdhimrtz")
OWN_QUOTA_FAMILIES: Final = ("inf", "dl", "trn", "hpc", "mac")
TYPES_PER_CALL: Final = 100  # DescribeInstanceTypes' InstanceTypes (remediate.aws.apis)


def is_standard(instance_type: str) -> bool:
    family = re.match(r"[a-z]*", instance_type.lower())
    name = family.group(0) if family else ""
    return bool(name) and name[0] in STANDARD_LETTERS \
        and not name.startswith(OWN_QUOTA_FAMILIES)


def _quota(region: Region, service: str, code: str) -> float:
    response = region.call("service-quotas", "GetServiceQuota", ServiceCode=service,
                           QuotaCode=code)
    return float(response["Quota"]["Value"])


def _vcpus(region: Region, types: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for names in chunks(sorted(types), TYPES_PER_CALL):
        for page in region.pages("ec2", "DescribeInstanceTypes", InstanceTypes=names):
            for info in page.get("InstanceTypes", []):
                found[info["InstanceType"]] = int(info["VCpuInfo"]["DefaultVCpus"])
    return found


def _running_types(region: Region) -> Counter[str]:
    return Counter(str(raw["InstanceType"]) for raw in region.described
                   if state_of(raw) in ("pending", "running"))


def pool_size(region: Region, settings: Settings) -> int:
    """Rescue instances the offline repair would launch in this scope."""
    per_az = Counter(i.availability_zone for i in region.instances)
    return sum(min(settings.rescue_per_az, math.ceil(n / len(SLOTS)))
               for n in per_az.values())


def _vcpu_verdict(region: Region, settings: Settings) -> Verdict:
    running = {t: n for t, n in _running_types(region).items() if is_standard(t)}
    pool = pool_size(region, settings) if settings.rescue_image else 0
    sizes = _vcpus(region, set(running) | ({settings.rescue_instance_type} if pool else set()))
    used = sum(sizes.get(t, 0) * n for t, n in running.items())
    needed = pool * sizes.get(settings.rescue_instance_type, 0)
    quota = _quota(region, *VCPU_QUOTA)
    if used + needed <= quota:
        return Verdict(VCPUS, 1, [])
    where = region.scope.region
    return Verdict(VCPUS, 1, [region.fail(
        VCPUS, f"{VCPU_QUOTA[0]}/{VCPU_QUOTA[1]}",
        f"{used:.0f} vCPUs running + {needed} for {pool} rescue instance(s) "
        f"({settings.rescue_instance_type}) exceed the quota of {quota:.0f}",
        f"ask for at least {used + needed:.0f}: aws service-quotas "
        f"request-service-quota-increase --service-code ec2 --quota-code {VCPU_QUOTA[1]} "
        f"--desired-value {math.ceil(used + needed)} --region {where} (or lower "
        "rescue_per_az)")])


def _snapshot_verdict(region: Region) -> Verdict:
    existing = len(region.snapshots)
    backups = len(region.instances)
    quota = _quota(region, *SNAPSHOT_QUOTA)
    if existing + backups <= quota:
        return Verdict(SNAPSHOTS, 1, [])
    return Verdict(SNAPSHOTS, 1, [region.fail(
        SNAPSHOTS, f"{SNAPSHOT_QUOTA[0]}/{SNAPSHOT_QUOTA[1]}",
        f"{existing} snapshots + {backups} backups (one per target) exceed the quota of "
        f"{quota:.0f}",
        f"ask for at least {existing + backups}: aws "
        f"service-quotas request-service-quota-increase --service-code ebs --quota-code "
        f"{SNAPSHOT_QUOTA[1]} --desired-value {existing + backups} --region "
        f"{region.scope.region}")])


def _vcpu_run(region: Region, settings: Settings) -> Iterator[Verdict]:
    yield _vcpu_verdict(region, settings)


def _snapshot_run(region: Region, settings: Settings) -> Iterator[Verdict]:
    yield _snapshot_verdict(region)


# Two checks: one quota that cannot be read does not hide the other's verdict.
VCPU_CHECK = Check((VCPUS,), _vcpu_run)
SNAPSHOT_CHECK = Check((SNAPSHOTS,), _snapshot_run)
