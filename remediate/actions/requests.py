"""What an action asks the executor for.

Actions are generators: they ``yield`` requests and receive the results, so the
executor alone decides when a call is sent (paced to AWS's buckets, batched with
other targets' calls, journaled first when it mutates, refused in a dry run) and
how waiting happens (one Describe call polls many targets; a waiting target holds
no thread). An action never imports boto3.

``yield Call(...)`` returns the response dict (for a batched call, the whole
response of the merged call). An AWS error is thrown into the generator as
:class:`AwsError` after the executor's own retries for throttling and transient
errors are spent. ``yield Wait(...)`` returns the resource's record once ``until``
holds (``None`` when the resource does not exist), or throws :class:`WaitTimeout`
/ :class:`WaitFailed`. ``yield Sleep(s)`` returns after ``s`` seconds on the run's
clock. ``yield Gate(key)`` parks until someone calls ``StepContext.open_gate(key)``
(with a ``timeout``, at most that long: the action then looks for itself).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

Record = Mapping[str, Any]


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    params: Mapping[str, Any] = field(default_factory=dict)
    # Calls with the same service, operation and other params may be merged
    # across targets by concatenating this list parameter (see aws.apis).
    batch_key: str | None = None
    # A line for the journal and the progress display.
    note: str = ""
    # "resend" or "reconcile" after an unknown outcome, overriding the operation's own
    # (remediate.aws.apis.Operation.on_unknown): e.g. a write the caller reads back
    # anyway is better reconciled at once than resent through a string of 5xx.
    on_unknown: str | None = None
    # Error codes the caller handles itself (a program's OnError): handed back at once,
    # not retried by the call layer first (throttling still is).
    handles: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Wait:
    resource: str
    resource_id: str
    until: Callable[[Record | None], bool]
    # Returns a reason when the resource reached a state it cannot leave for ``until``.
    failed: Callable[[Record | None], str | None] = lambda _r: None
    timeout: float = 900.0
    what: str = ""


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Gate:
    key: str
    # Give up waiting after this many seconds and return anyway (None: wait for the open).
    timeout: float | None = None


Request = Call | Wait | Sleep | Gate
ActionRun = Generator[Request, Any, Mapping[str, Any]]


class AwsError(Exception):
    """An AWS API error that reached the action (retries, if any, already spent)."""

    def __init__(self, code: str, message: str, operation: str = "", request_id: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.operation = operation
        self.request_id = request_id


class OutcomeUnknown(Exception):
    """A mutating call failed in a way that does not say whether AWS did it (a 5xx, a
    timeout, a reset connection: AWS may have acted and lost the reply), and resending
    it blindly could act twice (AttachVolume meets ``VolumeInUse``, CreateSnapshot makes a
    second backup). The executor does not resend it: it throws this into the action.

    An action does not catch it. The step is then *reconciled*: run again from its start,
    without counting an attempt, and every action reads AWS's state before it acts
    (``StepContext.may_have_sent`` now says the call may be in flight), so it finds what
    the lost call did and treats "already done" as done. An action raises it itself for
    an error its own lost call explains (``VolumeInUse`` after a lost AttachVolume, while
    DescribeVolumes still shows the volume available): see
    :mod:`remediate.actions.lost_replies`.
    """

    def __init__(self, code: str, message: str, operation: str = "",
                 request_id: str = "") -> None:
        super().__init__(f"{operation} outcome unknown ({code}: {message})" if message
                         else f"{operation} outcome unknown ({code})")
        self.code = code
        self.message = message
        self.operation = operation
        self.request_id = request_id


STEP_FAILED: Final = "remediate.StepFailed"
"""What a step failure is called (the Error of its Step Functions Fail state)."""
UNTOUCHED: Final = "remediate.Untouched"
"""A step failure that declares it changed nothing on the target (:class:`StepFailed`)."""
NO_CAPACITY: Final = "remediate.NoCapacity"
"""A step failure for want of EC2 capacity to start the instance; a rollback reads it at
``run.failure`` and does not try the start again."""


class StepFailed(Exception):
    """An action decided the target cannot go on; the message says why, for a human.

    ``kind`` names the failure for the executor (:data:`STEP_FAILED` unless the program
    said more): :data:`UNTOUCHED` declares that this step left the target as it found
    it, so the target ends ``refused`` with the reason and no rollback runs unless an
    earlier step changed it; any kind is what the rollback steps read at ``run.failure``
    (the Fail state's Error on Step Functions)."""

    def __init__(self, message: str = "", kind: str = STEP_FAILED) -> None:
        super().__init__(message)
        self.kind = kind


class WaitTimeout(StepFailed):
    """The wait's timeout passed; ``record`` is the last one read (None: none, or missing)."""

    def __init__(self, message: str, record: Record | None = None) -> None:
        super().__init__(message)
        self.record = record


class WaitFailed(StepFailed):
    pass


def state_of(resource: str, record: Record | None) -> str:
    from remediate.aws.resources import RESOURCES

    return RESOURCES[resource].state(record)


def state_in(resource: str, *states: str) -> Callable[[Record | None], bool]:
    wanted = frozenset(states)
    return lambda record: state_of(resource, record) in wanted


def fail_in(resource: str, *states: str) -> Callable[[Record | None], str | None]:
    bad = frozenset(states)

    def check(record: Record | None) -> str | None:
        state = state_of(resource, record)
        return f"{resource} is {state}" if state in bad else None

    return check


def observe(resource: str, resource_id: str) -> Wait:
    """A wait that is satisfied at once: the current record, fetched in a batch."""
    return Wait(resource, resource_id, until=lambda _r: True, what=f"read {resource}")


def wait_state(
    resource: str,
    resource_id: str,
    *states: str,
    fail_on: tuple[str, ...] = (),
    timeout: float = 900.0,
) -> Wait:
    return Wait(
        resource,
        resource_id,
        until=state_in(resource, *states),
        failed=fail_in(resource, *fail_on),
        timeout=timeout,
        what=f"{resource} {resource_id} {'/'.join(states)}",
    )
