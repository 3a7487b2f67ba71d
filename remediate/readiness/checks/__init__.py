"""The readiness checks, one module each, in the order they run and are reported.

A new check is a module exporting ``CHECK`` (:class:`remediate.readiness.check.Check`)
and one line below.
"""

from __future__ import annotations

from typing import Final

from remediate.readiness.check import Check
from remediate.readiness.checks import (
    bitlocker_escrow,
    iam_policy,
    kms_keys,
    quotas,
    rescue_image,
    rescue_ssm,
    snapshot_age,
)

CHECKS: Final[tuple[Check, ...]] = (
    rescue_image.CHECK,
    rescue_ssm.CHECK,
    snapshot_age.CHECK,
    kms_keys.CHECK,
    quotas.VCPU_CHECK,
    quotas.SNAPSHOT_CHECK,
    iam_policy.CHECK,
    bitlocker_escrow.CHECK,
)
