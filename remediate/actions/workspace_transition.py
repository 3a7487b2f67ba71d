"""One WorkSpaces state change (start, reboot, restore, rebuild), decided from AWS's state:
program pieces (:mod:`remediate.actions.program`) that both engines run.

Each of these requests puts the WorkSpace in a transitional state (STARTING,
REBOOTING, RESTORING, REBUILDING) and returns at once; the WorkSpace then settles
(AVAILABLE, UNHEALTHY, ERROR...). Before sending, :func:`settle` reads the WorkSpace:

- already in the transitional state (ours before a crash or a lost reply, or someone
  else's): wait for it to settle instead of sending it again;
- this step may have sent it before (:class:`~remediate.actions.program.Sent`: a
  resumed or reconciled step; locally the journal says so, on Step Functions the
  iteration's record of a call whose reply was lost): AVAILABLE, or a state the request
  cannot start from (a start that left a WorkSpace UNHEALTHY), is what the call led to;
  otherwise give the call time to show, and if nothing shows, send again only a request
  whose repeat is harmless (start, reboot). A restore or a rebuild throws user data away:
  it is never sent twice; the state the WorkSpace is in is its result (an ERROR after a
  restore goes on to the rebuild), except that a rebuild that shows no sign of its
  request (it may never have reached AWS) fails the step, saying so, for a human;
- refused (a ``FailedRequests`` entry for our id, or RestoreWorkspace's
  ``OperationNotSupportedException``) while the WorkSpace is in the transitional state:
  that is our own earlier call in progress (its reply was lost and the request was
  repeated), so it is waited for, not reported as a failure.

Where the pieces keep things: ``vars.ws`` the WorkSpace's record as last read,
``vars.found`` its state when the step began, ``vars.state`` its state once settled
(``missing`` if it is gone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from remediate.actions.program import (
    TARGET_ID,
    All,
    Await,
    Done,
    Eq,
    Exists,
    Expr,
    Fail,
    Find,
    Fmt,
    If,
    In,
    Not,
    OnError,
    Pred,
    Read,
    Same,
    Send,
    Sent,
    Seq,
    Set,
    Var,
)

AVAILABLE: Final = "AVAILABLE"
MISSING: Final = "missing"
# How long a WorkSpace may take to show the state change a request started.
ENTER_TIMEOUT: Final = 120.0
# The errors a WorkSpaces request answers for a WorkSpace in the wrong state: the
# exception shapes of the API (RestoreWorkspace declares OperationNotSupportedException).
STATE_ERRORS: Final = ("InvalidResourceStateException", "OperationNotSupportedException")

IT: Final = Var("it")
WS: Final = Var("vars.ws")
FOUND: Final = Var("vars.found")
STATE: Final = Var("vars.state")
_REFUSAL: Final = Var("vars.refusal")
_GO: Final = Var("vars.go")


@dataclass(frozen=True)
class Transition:
    """What one WorkSpaces request does: from which states, through which one."""

    operation: str
    transient: str
    # The states AWS starts it from (its API reference).
    allowed: frozenset[str]
    # What the request is called in notes ("reboot ws-...").
    verb: str
    # The batch API's list of requests, merged across targets locally (None: one
    # WorkSpace a call, ``{"WorkspaceId": ...}``).
    batch_field: str | None = None
    # A repeat destroys user data (restore, rebuild): never sent twice.
    destructive: bool = False
    # A WorkSpace found in ``transient`` longer than the in-flight wait may be sent it again
    # (RebootWorkspaces: "stuck in the REBOOTING state for over 20 minutes").
    restart_when_stuck: bool = False
    # Nothing comes after it (rebuild): a destructive request that may have gone out and
    # shows no sign fails the step, saying so, rather than pass its state on (a restore's
    # goes on to the rebuild).
    last_resort: bool = False


def read() -> Seq:
    """The WorkSpace's record now, at ``vars.ws`` (the step fails if it does not exist)."""
    return (Read("ws", "workspace", TARGET_ID),
            If(((Exists(WS, False), (Fail(Fmt("WorkSpace ", TARGET_ID, " does not exist")),)),)))


def _left(until: Pred, left: Expr, timeout: float, on_timeout: Seq) -> Await:
    return Await("ws", "workspace", TARGET_ID, until=until, timeout=timeout,
                 what=Fmt("WorkSpace ", TARGET_ID, " no longer ", left), on_timeout=on_timeout)


def finish(change: Transition, timeout: float) -> Seq:
    """The record once a transition under way has ended (or, ``timeout`` run out, as last
    read: still transient)."""
    return (_left(Not(Eq(IT.State, change.transient)), change.transient, timeout, ()),)


def _entered(change: Transition) -> Seq:
    """Wait (at most :data:`ENTER_TIMEOUT`) until the WorkSpace has left the state it was
    found in: a reboot of an AVAILABLE WorkSpace must not count as done before AWS shows
    it REBOOTING. If it never does, the record shows it still there."""
    return (If(((Not(Eq(FOUND, change.transient)), (
                _left(Not(Same(IT.State, FOUND)), FOUND, ENTER_TIMEOUT, ()),)),)),)


def through(change: Transition, timeout: float) -> Seq:
    """The record once the WorkSpace has left the state it was found in, then
    ``transient`` (if it stays ``transient`` past ``timeout``, the record shows it so)."""
    return (*_entered(change), *finish(change, timeout))


def settle(change: Transition, timeout: float, in_flight_timeout: float,
           unchanged: Seq) -> Seq:
    """Bring about ``change`` on the step's WorkSpace, at most once where it matters, until
    it settled (``vars.state``). ``unchanged``: what the step does when the WorkSpace is in
    a state ``change`` cannot start from and nothing of ours was under way (it must end
    the step: skip, or fail). See the module docstring for the rules."""
    in_flight: Seq = finish(change, in_flight_timeout)
    if change.restart_when_stuck:
        in_flight = (*in_flight, If(((Eq(WS.State, change.transient), (Set("go", True),)),)))
    shown: Seq = through(change, timeout)
    if not change.destructive:  # nothing showed: a harmless request goes again
        shown = (*shown, If(((Same(WS.State, FOUND), (Set("go", True),)),)))
    elif change.last_resort:  # nothing showed, and nothing comes after: a human decides
        shown = (*shown, If(((Same(WS.State, FOUND), (Fail(unseen(change)),)),)))
    return (*read(), Set("found", WS.State), Set("go", False),
            If(((Eq(FOUND, change.transient), in_flight),
                # AVAILABLE is what the call was for; a state it cannot start from is what
                # it led to (a start that took a WorkSpace out of STOPPED, UNHEALTHY):
                # sent again, it would only be refused.
                (Sent(change.operation), (If(((All(Not(Eq(FOUND, AVAILABLE)),
                                                    In(FOUND, *sorted(change.allowed))),
                                                shown),)),)),
                (Not(In(FOUND, *sorted(change.allowed))), unchanged)),
               orelse=(Set("go", True),)),
            If(((Eq(_GO, True), _send(change, timeout)),)),
            If(((Exists(WS, False), (Set("state", MISSING),)),), orelse=(Set("state", WS.State),)))


def unseen(change: Transition) -> Fmt:
    """Why a last-resort step whose request may have gone out, and shows no sign of it,
    stops: sent again it could throw user data away twice; its state (still broken,
    whether the request failed or never reached AWS) would only fail the verification
    later, without saying why."""
    return Fmt(f"{change.operation} may have been sent to ", TARGET_ID, " before the run was "
               "interrupted (or its reply was lost), but the WorkSpace shows no sign of it: "
               "still ", FOUND, f" after {ENTER_TIMEOUT / 60:g} minutes, never "
               f"{change.transient}. It is not sent again (a repeat could throw user data "
               "away twice): check the WorkSpace (AWS CloudTrail shows whether the request "
               "reached AWS) and send it by hand if it did not")


def _send(change: Transition, timeout: float) -> Seq:
    """Send the request; refused for a wrong state while the WorkSpace shows our own
    change under way, wait for it; refused otherwise, fail naming the state."""
    prefix = f"{change.operation} refused "
    refused_by_aws = OnError(STATE_ERRORS, (
        Set("refusal", Fmt(prefix, TARGET_ID, ": ", Var("vars.error").Cause)),), into="error")
    request: dict[str, Any]
    if change.batch_field is None:
        request = {"WorkspaceId": TARGET_ID}
        send = Send("workspaces", change.operation, request, note=Fmt(f"{change.verb} ", TARGET_ID),
                    on_error=(refused_by_aws,))
        listed: Seq = ()
    else:
        request = {change.batch_field: [{"WorkspaceId": TARGET_ID}]}
        send = Send("workspaces", change.operation, request, batch_key=change.batch_field,
                    note=Fmt(f"{change.verb} ", TARGET_ID), into="reply",
                    pick={"failed": "FailedRequests[*]"}, on_error=(refused_by_aws,))
        listed = (If(((Exists(_REFUSAL, False), _own_failure(prefix)),)),)
    return (Set("refusal", None), send, *listed,
            If(((Exists(_REFUSAL), (
                *read(),
                If(((Not(Eq(WS.State, change.transient)), (
                    Fail(Fmt(_REFUSAL, " (it is ", WS.State, ")")),)),)))),),
               # (Refused while transient: our own call in progress, a lost reply and the
               # request went again, or one someone else started just before ours: either
               # way it is waited for.)
               orelse=_entered(change)),
            *finish(change, timeout))


def _own_failure(prefix: str) -> Seq:
    """``vars.refusal``: why the batch response refused this WorkSpace (its
    ``FailedRequests`` entry; a merged request lists other targets' too), if it did."""
    mine, code = Var("vars.mine"), Var("vars.code")
    message = mine.ErrorMessage
    return (Find("mine", Var("vars.reply.failed"), "WorkspaceId", TARGET_ID),
            If(((Exists(mine), (
                Set("code", mine.ErrorCode),
                If(((Exists(code, False), (Set("code", "unknown"),)),)),
                If(((All(Exists(message), Not(Eq(message, ""))), (
                    Set("refusal", Fmt(prefix, TARGET_ID, ": ", code, ": ", message)),)),),
                   orelse=(Set("refusal", Fmt(prefix, TARGET_ID, ": ", code)),)))),)))


def healthy_or_not(outputs: dict[str, Expr], state: Var = STATE) -> Seq:
    """End the step with ``outputs``, ``healthy`` (AVAILABLE or not) and ``state``."""
    return (If(((Eq(state, AVAILABLE), (Done({**outputs, "healthy": True, "state": state}),)),)),
            Done({**outputs, "healthy": False, "state": state}))
