"""What an action does about its own calls whose replies were lost.

A mutating call that AWS may have done without saying so (a 5xx, a timeout) comes back
to the action as :class:`~remediate.actions.requests.OutcomeUnknown`, and the step runs
again from its start, reading AWS's state first. Two things make that reading hard:

* AWS is eventually consistent: what the lost call made (a snapshot, an SSM command)
  may not be *listed* yet when the step looks. Before making it again, the step looks
  again (:func:`look_again`; in a program, :func:`find_made`), as AWS advises: "run
  the Describe command repeatedly, starting with a couple of seconds of wait time, and
  increasing gradually"
  ("Eventual consistency in the Amazon EC2 API",
  docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html). Six more looks,
  2 s to 64 s apart: about two minutes, paid only when a lost call's result is not
  found (it did nothing after all, or AWS is slow to show it).
* A call made again can meet its own lost twin (AttachVolume answers ``VolumeInUse``
  for the attach that did happen, while DescribeVolumes still shows the volume
  available). Such an error after a lost reply is not a failure: the step reconciles
  again (:func:`conflict`; in a program, ``Send(reconcile_on=...)`` with the codes below),
  until AWS's state says what happened.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Final

from remediate.actions.contract import StepContext
from remediate.actions.program import All, If, Not, Pause, Pred, Sent, Seq
from remediate.actions.requests import (
    AwsError,
    OutcomeUnknown,
    Request,
    Sleep,
    StepFailed,
)

# Errors that say a volume is not where the call needs it: after a lost AttachVolume or
# DetachVolume, that is what the lost call did (AWS's EC2 error codes).
ATTACH_CONFLICTS: Final[frozenset[str]] = frozenset({"VolumeInUse", "IncorrectState"})
DETACH_CONFLICTS: Final[frozenset[str]] = frozenset({"IncorrectState",
                                                     "InvalidAttachment.NotFound"})
# Seconds between the extra looks for what a lost call made (about two minutes in all).
LOOKS: Final = (2.0, 4.0, 8.0, 16.0, 32.0, 64.0)

Found = Generator[Request, Any, Any]


def look_again(find: Callable[[], Found]) -> Found:
    """``find()`` again after each of :data:`LOOKS` until it finds something (truthy);
    what it found last (falsy if never)."""
    found: Any = None
    for delay in LOOKS:
        yield Sleep(delay)
        found = yield from find()
        if found:
            return found
    return found


def find_made(operation: str, find: Seq, found: Pred) -> Seq:
    """A program's :func:`look_again`: ``find`` (steps that read what ``operation`` makes,
    ``found`` saying whether they found it); when nothing is found and this step may
    already have sent ``operation`` (its reply lost), ``find`` again after each of
    :data:`LOOKS` until ``found`` holds. Then, and only then, the caller makes another."""
    again = tuple(If(((Not(found), (Pause(delay), *find)),)) for delay in LOOKS)
    return (*find, If(((All(Not(found), Sent(operation)), again),)))


def conflict(ctx: StepContext, exc: AwsError, subject: str) -> Exception:
    """What to raise for an error ``exc`` that says the resource is not in the state the
    call needs (VolumeInUse, IncorrectState): :class:`OutcomeUnknown` (reconcile again)
    if this step's own earlier call of that operation lost its reply and may be the
    cause, else the step's failure."""
    if ctx.reply_lost(exc.operation):
        return OutcomeUnknown(exc.code, exc.message, exc.operation, exc.request_id)
    return StepFailed(f"{exc.operation} for {subject} failed: {exc}")
