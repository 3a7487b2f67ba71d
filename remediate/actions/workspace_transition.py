"""One WorkSpaces state change (start, reboot, restore, rebuild), decided from AWS's state.

Each of these requests puts the WorkSpace in a transitional state (STARTING,
REBOOTING, RESTORING, REBUILDING) and returns at once; the WorkSpace then settles
(AVAILABLE, UNHEALTHY, ERROR...). Before sending, :func:`settle` reads the WorkSpace:

- already in the transitional state (ours before a crash or a lost reply, or someone
  else's): wait for it to settle instead of sending it again;
- the journal says this step may have sent it before (a resumed or reconciled step,
  ``StepContext.may_have_sent``): AVAILABLE means done; otherwise give the call time
  to show, and if nothing shows, send again only a request whose repeat is harmless
  (start, reboot). A restore or a rebuild throws user data away: it is never sent
  twice; its result is the state the WorkSpace is in;
- refused (a ``FailedRequests`` entry for our id, or RestoreWorkspace's
  ``OperationNotSupportedException``) while the WorkSpace is in the transitional state:
  that is our own earlier call in progress (its reply was lost and the request was
  repeated), so it is waited for, not reported as a failure.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from remediate.actions.contract import StepContext
from remediate.actions.requests import (
    AwsError,
    Call,
    Request,
    StepFailed,
    Wait,
    WaitTimeout,
    observe,
    state_of,
)

Record = Mapping[str, Any]
Reads = Generator[Request, Any, Any]

AVAILABLE: Final = "AVAILABLE"
# How long a WorkSpace may take to show the state change a request started.
ENTER_TIMEOUT: Final = 120.0
# The errors a WorkSpaces request answers for a WorkSpace in the wrong state: the
# exception shapes of the API (RestoreWorkspace declares OperationNotSupportedException).
STATE_ERRORS: Final = frozenset({"InvalidResourceStateException",
                                 "OperationNotSupportedException"})


@dataclass(frozen=True)
class Transition:
    """What one WorkSpaces request does: from which states, through which one."""

    operation: str
    transient: str
    # The states AWS starts it from (its API reference).
    allowed: frozenset[str]
    request: Callable[[str], Call]
    # A repeat destroys user data (restore, rebuild): never sent twice.
    destructive: bool = False
    # A WorkSpace found in ``transient`` longer than the in-flight wait may be sent it again
    # (RebootWorkspaces: "stuck in the REBOOTING state for over 20 minutes").
    restart_when_stuck: bool = False


def state(record: Record | None) -> str:
    return state_of("workspace", record)


def read(workspace_id: str) -> Reads:
    """The WorkSpace's record now (StepFailed if it does not exist)."""
    record = yield observe("workspace", workspace_id)
    if record is None:
        raise StepFailed(f"WorkSpace {workspace_id} does not exist")
    return record


def _left(workspace_id: str, left: str, timeout: float) -> Wait:
    return Wait("workspace", workspace_id, until=lambda r: state(r) != left, timeout=timeout,
                what=f"WorkSpace {workspace_id} no longer {left}")


def through(workspace_id: str, before: str, transient: str, timeout: float) -> Reads:
    """The record once the WorkSpace has left ``before`` and then ``transient``.

    Waiting for the change first keeps a reboot of an AVAILABLE WorkSpace from
    counting as done before AWS shows it REBOOTING. If it never leaves ``before`` (within
    :data:`ENTER_TIMEOUT`), the record shows it still there; if it stays ``transient``
    past ``timeout``, the record shows it still transient.
    """
    if before != transient:
        with contextlib.suppress(WaitTimeout):
            yield _left(workspace_id, before, ENTER_TIMEOUT)
    try:
        return (yield _left(workspace_id, transient, timeout))
    except WaitTimeout:
        return (yield from read(workspace_id))


def refusal(response: Mapping[str, Any], workspace_id: str, operation: str) -> str | None:
    """Why a (possibly batched) response refused ``workspace_id``; None if it did not."""
    for failed in response.get("FailedRequests") or []:
        if failed.get("WorkspaceId") == workspace_id:
            return (f"{operation} refused {workspace_id}: {failed.get('ErrorCode', 'unknown')}: "
                    f"{failed.get('ErrorMessage', '')}".rstrip(": "))
    return None


@dataclass(frozen=True)
class Settled:
    record: Record
    # False: the WorkSpace was in a state ``change`` cannot start from and nothing of ours
    # was under way, so nothing was done (the caller says what that means: skip, or fail).
    changed: bool = True

    @property
    def state(self) -> str:
        return state(self.record)


def settle(change: Transition, ctx: StepContext, timeout: float,
           in_flight_timeout: float) -> Generator[Request, Any, Settled]:
    """Bring about ``change`` on the step's WorkSpace, at most once where it matters, and
    return the WorkSpace once it settled. See the module docstring for the rules."""
    workspace_id = ctx.target.id
    record = yield from read(workspace_id)
    now = state(record)
    if now == change.transient:
        record = yield from _finish(change, workspace_id, in_flight_timeout)
        if state(record) != change.transient or not change.restart_when_stuck:
            return Settled(record)
    elif ctx.may_have_sent(change.operation):
        if now == AVAILABLE:
            return Settled(record)  # what our call was for (or nothing was left to do)
        record = yield from through(workspace_id, now, change.transient, timeout)
        if state(record) != now or change.destructive:
            return Settled(record)
    elif now not in change.allowed:
        return Settled(record, changed=False)
    refused = yield from _send(change, workspace_id)
    if refused is not None:
        record = yield from read(workspace_id)
        if state(record) != change.transient:
            raise StepFailed(f"{refused} (it is {state(record)})")
        # Our own call in progress (a lost reply, and the request went again), or one
        # that someone else started just before ours: either way, wait for it.
        return Settled((yield from _finish(change, workspace_id, timeout)))
    return Settled((yield from through(workspace_id, now, change.transient, timeout)))


def _finish(change: Transition, workspace_id: str, timeout: float) -> Reads:
    """The record once a transition under way has ended (or ``timeout`` ran out)."""
    try:
        return (yield _left(workspace_id, change.transient, timeout))
    except WaitTimeout:
        return (yield from read(workspace_id))


def _send(change: Transition, workspace_id: str) -> Reads:
    """Send the request; why AWS refused it for a wrong state (None: accepted)."""
    try:
        response = yield change.request(workspace_id)
    except AwsError as error:
        if error.code not in STATE_ERRORS:
            raise
        return f"{change.operation} refused {workspace_id}: {error}"
    return refusal(response, workspace_id, change.operation)
