"""EC2's client tokens, which moto 5.2.5 ignores (it launched a second instance for a
RunInstances sent again with the same ``ClientToken``).

AWS's "Ensuring idempotency in Amazon EC2 API requests"
(docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html): a request repeated
with the same client token and the same parameters "completes successfully without
performing any further actions" and returns the original result; the same token with
other parameters (other than the Region or Availability Zone) fails with
``IdempotentParameterMismatch``. Tokens are per account and Region; the page keeps a
RunInstances token valid for at least 24 hours after the instance terminates, so the
sandbox keeps every token for its lifetime.

Which operations take a token comes from botocore's EC2 model (the members it marks
``idempotencyToken``), so RunInstances, CreateReplaceRootVolumeTask, CreateVolume... all
behave so. The first successful answer is kept and replayed byte for byte; the page
allows a repeat to carry fresher state, and nothing here relies on that.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from moto.core.common_types import TYPE_RESPONSE

from remediate.sandbox import errors
from remediate.sandbox.botocore_models import ec2_model

# Request keys that never make a repeat different (AWS: "other than the Region or
# Availability Zone"); the token itself, and the protocol's own keys.
_NEUTRAL = frozenset({"Action", "Version", "DryRun", "Placement.AvailabilityZone",
                      "AvailabilityZone"})


# Tokens AWS documents that botocore's model does not mark ``idempotencyToken``:
# CreateCapacityReservation's ClientToken is "to ensure the idempotency of the request"
# (EC2 API reference, docs.aws.amazon.com/AWSEC2/latest/APIReference/
# API_CreateCapacityReservation.html).
_DOCUMENTED: dict[str, str] = {"CreateCapacityReservation": "ClientToken"}


@functools.cache
def token_parameter(operation: str) -> str | None:
    """The EC2 operation's idempotency-token parameter (e.g. ``ClientToken``), if any."""
    if operation in _DOCUMENTED:
        return _DOCUMENTED[operation]
    model = ec2_model()
    if operation not in model.operation_names:
        return None
    shape = model.operation_model(operation).input_shape
    if shape is None:
        return None
    return next((name for name, member in shape.members.items()
                 if member.metadata.get("idempotencyToken")), None)


@dataclass(frozen=True)
class Original:
    """The request a token was first used with, and the answer it got."""

    fingerprint: tuple[tuple[str, tuple[str, ...]], ...]
    response: TYPE_RESPONSE


def fingerprint(querystring: Mapping[str, list[str]], token: str
                ) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """What makes two requests the same request, in AWS's sense."""
    return tuple(sorted((key, tuple(values)) for key, values in querystring.items()
                        if key not in _NEUTRAL and key != token))


class Tokens:
    """Client tokens seen, by (account, Region, operation, token)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str, str, str], Original] = {}

    @staticmethod
    def key(account: str, region: str, operation: str,
            querystring: Mapping[str, list[str]]) -> tuple[str, str, str, str] | None:
        """The key of this request's token; None if the operation takes none or the
        request carries none (then every request acts)."""
        name = token_parameter(operation)
        values = querystring.get(name) if name else None
        if not name or not values or not values[0]:
            return None
        return account, region, operation, values[0]

    def replay(self, key: tuple[str, str, str, str],
               querystring: Mapping[str, list[str]]) -> TYPE_RESPONSE | None:
        """The original answer to a repeat of the same request; raises
        ``IdempotentParameterMismatch`` for the same token with other parameters; None for
        a token not seen yet."""
        original = self._seen.get(key)
        if original is None:
            return None
        name = token_parameter(key[2]) or ""
        if original.fingerprint != fingerprint(querystring, name):
            raise errors.idempotent_parameter_mismatch()
        return original.response

    def remember(self, key: tuple[str, str, str, str], querystring: Mapping[str, list[str]],
                 response: TYPE_RESPONSE) -> None:
        """Keep a successful answer (a failed request used no token: AWS acted on nothing)."""
        if 200 <= int(response[0]) < 300:
            name = token_parameter(key[2]) or ""
            self._seen.setdefault(key, Original(fingerprint(querystring, name), response))
