"""AWS error codes, classified: what is worth retrying and what fails the step at once.

Sets are typed ``frozenset[str]`` (a stray trailing comma in a tuple of codes once
silently disabled Cloud Custodian's throttling retries); tests cover every code.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Final

from remediate.actions.requests import AwsError


class ErrorClass(Enum):
    THROTTLED = "throttled"  # slow down and retry
    TRANSIENT = "transient"  # AWS-side or network hiccup: retry
    EVENTUAL = "eventual"  # a just-created id not visible yet: retry a few times
    CAPACITY = "capacity"  # AWS has no capacity for it now and did nothing: retry later
    FATAL = "fatal"  # the request is wrong for this target: fail the step


THROTTLING_CODES: Final[frozenset[str]] = frozenset({
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "SlowDown",
    "EC2ThrottledException",
    "PriorRequestNotComplete",
    "BandwidthLimitExceeded",
})

TRANSIENT_CODES: Final[frozenset[str]] = frozenset({
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServiceError",
    "InternalServerException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
    "IDPCommunicationError",
    "ConnectionError",
})

# A definite refusal (nothing was started, launched or reserved), not an unknown outcome
# and not throttling: capacity comes back in minutes, not seconds ("Troubleshoot
# instance launch issues", EC2 User Guide: "wait a few minutes and then submit your
# request again"), so it has a retry budget of its own (RetryPolicy.capacity_*).
CAPACITY_CODES: Final[frozenset[str]] = frozenset({
    "InsufficientInstanceCapacity",
})

EVENTUAL_CODES: Final[frozenset[str]] = frozenset({
    "InvalidInstanceID.NotFound",
    "InvalidVolume.NotFound",
    "InvalidSnapshot.NotFound",
    "InvalidAMIID.NotFound",
    "InvalidInstanceId",
})

# The caller may not make the call: what it would have read is unknown, not missing.
ACCESS_DENIED_CODES: Final[frozenset[str]] = frozenset({
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
})


def classify(code: str) -> ErrorClass:
    if code in THROTTLING_CODES:
        return ErrorClass.THROTTLED
    if code in TRANSIENT_CODES:
        return ErrorClass.TRANSIENT
    if code in EVENTUAL_CODES:
        return ErrorClass.EVENTUAL
    if code in CAPACITY_CODES:
        return ErrorClass.CAPACITY
    return ErrorClass.FATAL


def from_exception(exc: BaseException, operation: str = "") -> AwsError:
    """An :class:`AwsError` for anything a boto3 call raised."""
    if isinstance(exc, AwsError):
        return exc
    response: Any = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        error = response.get("Error", {})
        meta = response.get("ResponseMetadata", {})
        return AwsError(
            str(error.get("Code", "Unknown")),
            str(error.get("Message", "")),
            operation or str(getattr(exc, "operation_name", "")),
            str(meta.get("RequestId", "")),
        )
    name = type(exc).__name__
    if name in {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError",
                "ConnectionClosedError", "ConnectionError"}:
        return AwsError("ConnectionError", str(exc), operation)
    if name in {"NoCredentialsError", "PartialCredentialsError"}:
        return AwsError("NoCredentials", str(exc), operation)
    return AwsError(name, str(exc), operation)
