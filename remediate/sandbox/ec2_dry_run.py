"""What EC2 checks in a DryRun request before it answers ``DryRunOperation``.

AWS validates a DryRun request like the real one, short of doing it: RunInstances
from an AMI the Region does not have answers ``InvalidAMIID.NotFound`` (and an id
that is not an AMI id, ``InvalidAMIID.Malformed``), not ``DryRunOperation``. A
dry run's permission probe relies on that to tell a missing rescue image from a
launch that would be allowed; moto answers ``DryRunOperation`` to anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from remediate.sandbox import errors
from remediate.sandbox.errors import SandboxError

AMI_ID: Final = re.compile(r"ami-(?:[0-9a-f]{8}|[0-9a-f]{17})")


def _run_instances(response: Any) -> SandboxError | None:
    image_id = str(response._get_param("ImageId") or "")
    if not AMI_ID.fullmatch(image_id):
        return errors.image_malformed(image_id)
    if image_id not in response.ec2_backend.amis:
        return errors.image_not_found(image_id)
    return None


# EC2 operation -> what it validates in a DryRun request (moto's response object in).
CHECKS: Final[Mapping[str, Callable[[Any], SandboxError | None]]] = {
    "RunInstances": _run_instances,
}


def refusal(service: str, operation: str, response: Any) -> SandboxError | None:
    """The error AWS answers a DryRun ``operation`` with instead of DryRunOperation."""
    check = CHECKS.get(operation) if service == "ec2" else None
    return check(response) if check is not None else None
