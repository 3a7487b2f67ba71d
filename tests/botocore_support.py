"""The botocore ``Config`` every test's own client uses: one attempt, as remediate's."""

from __future__ import annotations

from remediate.aws.clients import single_attempt

NO_RETRIES = single_attempt()
