"""botocore's service models, as the sandbox reads them (which parameters are idempotency
tokens, which filters an operation documents): loaded once per process, since a fresh
botocore session parses the EC2 model again (~0.3 s each time)."""

from __future__ import annotations

from functools import cache
from typing import Any

import botocore.session


@cache
def ec2_model() -> Any:
    """botocore's EC2 service model."""
    return botocore.session.get_session().get_service_model("ec2")
