"""Service Quotas' GetServiceQuota for the quotas readiness reads, which moto lacks.

moto 5.2 knows only VPC quotas; EC2's and EBS's answer ``NoSuchResourceException``.
The sandbox answers the two a mass recovery depends on, with the shape of AWS's
``ServiceQuota`` (botocore's service-quotas model) and the applied value
``Sandbox.set_quota`` gave the account and Region, else :data:`DEFAULTS`:

- ``ec2`` ``L-1216C47A`` Running On-Demand Standard (A, C, D, H, I, M, R, T, Z)
  instances, in vCPUs. AWS's default for a new account is low and raised on request
  (https://docs.aws.amazon.com/ec2/latest/instancetypes/ec2-instance-quotas.html); a
  sandbox account stands for one already running a large fleet, so its applied value
  is 100,000 vCPUs unless a test sets another.
- ``ebs`` ``L-309BACF6`` Snapshots per Region: 100,000, AWS's default
  (https://docs.aws.amazon.com/general/latest/gr/ebs-service.html).
"""

from __future__ import annotations

from typing import Any, Final

from moto.servicequotas.models import ServiceQuotasBackend

from remediate.sandbox.patcher import Patcher
from remediate.sandbox.state import current

NAMES: Final = {
    ("ec2", "L-1216C47A"): ("Amazon Elastic Compute Cloud (Amazon EC2)",
                            "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances"),
    ("ebs", "L-309BACF6"): ("Amazon Elastic Block Store (Amazon EBS)", "Snapshots per Region"),
}
DEFAULTS: Final = {("ec2", "L-1216C47A"): 100_000.0, ("ebs", "L-309BACF6"): 100_000.0}


def install(patcher: Patcher) -> None:
    original = patcher.original(ServiceQuotasBackend, "get_service_quota")

    def get_service_quota(self: Any, service_code: str, quota_code: str) -> Any:
        key = (service_code, quota_code)
        if key not in NAMES:
            return original(self, service_code, quota_code)
        world = current()
        with world.lock:
            value = world.quotas.get((self.account_id, self.region_name, *key), DEFAULTS[key])
        service_name, quota_name = NAMES[key]
        return {"ServiceCode": service_code, "ServiceName": service_name,
                "QuotaArn": f"arn:aws:servicequotas:{self.region_name}:{self.account_id}:"
                            f"{service_code}/{quota_code}",
                "QuotaCode": quota_code, "QuotaName": quota_name, "Value": value,
                "Unit": "None", "Adjustable": True, "GlobalQuota": False}

    patcher.set(ServiceQuotasBackend, "get_service_quota", get_service_quota)
