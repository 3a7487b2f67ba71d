"""The call layer: every AWS call of a run goes through here, and only here.

It refuses mutating calls in a dry run (so even a buggy action cannot mutate),
paces calls to the run's token buckets, merges batchable calls across targets,
journals each mutating call's intent before it is sent and its result after,
retries throttled, transient and not-yet-consistent errors on the scheduler's
timeline (publishing :class:`ApiRetrying`), and splits a merged call that failed
for good into one call per target so the error reaches the target it belongs to.

A mutating call whose outcome is unknown (a 5xx, a timeout: AWS may have acted and
lost the reply) is journaled ``unknown`` and resent only if resending is safe
(``Operation.resendable``: idempotent, or carrying its idempotency token); any other
is handed back to the action as :class:`OutcomeUnknown`, to reconcile from AWS's state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from botocore import xform_name

from remediate.actions.requests import AwsError, Call, OutcomeUnknown, StepFailed
from remediate.aws.apis import (
    Operation,
    UnknownOperation,
    is_dry_run_probe,
    is_mutating,
    operation,
)
from remediate.aws.errors import ErrorClass, classify, from_exception
from remediate.aws.ratelimit import RateLimiter
from remediate.aws.retry import RetryPolicy
from remediate.executor.batching import (
    Lane,
    Pending,
    batch_ids,
    merge,
    ready_for_window,
    splittable,
)
from remediate.executor.events import ApiOutcomeUnknown, ApiRetrying, EventBus, Notice
from remediate.executor.scheduler import Scheduler, Ticket
from remediate.journal import Journal

# (account, region, service) -> a boto3 client. remediate.aws.clients builds them with
# botocore retries off (remediate.aws.clients.BOTOCORE_RETRIES); its ClientFactory.client
# takes (service, region, account): adapt with a lambda.
ClientLookup = Callable[[str, str, str], Any]

LaneKey = tuple[str, str, str, str | None]


class MutationRefused(RuntimeError):
    """A mutating call in a dry run: a bug in the action, refused before it left."""


@dataclass
class Dispatch:
    """One request on its way: one or more targets' calls merged."""

    members: list[Pending]
    params: dict[str, Any]
    op: Operation
    account: str
    region: str
    sent_at: float = 0.0
    """On the run's clock: a throttle answered to a request sent before the rate was
    cut tells nothing new (remediate.aws.adaptive)."""
    call_ids: list[int] = field(default_factory=list)

    @property
    def api(self) -> str:
        return f"{self.op.service}:{self.op.name}"

    @property
    def mutates(self) -> bool:
        """Whether AWS may change something (a DryRun probe never does)."""
        return self.op.mutating and not is_dry_run_probe(self.op.service, self.params)


class CallLayer:
    def __init__(self, scheduler: Scheduler, clients: ClientLookup, limiter: RateLimiter,
                 journal: Journal, bus: EventBus, run_id: str, *, dry_run: bool = False,
                 retry: RetryPolicy | None = None, batch_window: float = 0.0) -> None:
        self.scheduler = scheduler
        self.clock = scheduler.clock
        self.clients = clients
        self.limiter = limiter
        self.journal = journal
        self.bus = bus
        self.run_id = run_id
        self.dry_run = dry_run
        self.retry = retry or RetryPolicy()
        self.batch_window = batch_window
        self._lanes: dict[LaneKey, Lane] = {}
        # Requests sent, by "service:Operation" (one merged call counts once).
        self.sent: Counter[str] = Counter()
        self.refused = 0
        # Mutating requests whose outcome was unknown and handed back to reconcile.
        self.unknown: Counter[str] = Counter()
        # Target keys with a mutating (non-rollback) call that AWS did not reject.
        self.mutated: set[str] = set()
        # Caller key -> how long its latest call waited for its turn (pacing, retries),
        # on the clock: network time left out (remediate.executor.claiming reads it).
        self.waited: dict[str, float] = {}
        scheduler.handle(Call, self.submit)
        scheduler.add_pump(self.pump)

    # ---- in: a task yields a Call ----------------------------------------------------

    def submit(self, ticket: Ticket, call: Call) -> None:
        try:
            op = operation(call.service, call.operation)
        except UnknownOperation as exc:
            ticket.fail(StepFailed(f"{exc.args[0]}: remediate does not know how to pace it"))
            return
        if (self.dry_run and is_mutating(call.service, call.operation)
                and not is_dry_run_probe(call.service, call.params)):
            self.refused += 1
            ticket.fail(MutationRefused(
                f"dry run: refused to send {op.service}:{op.name}, which mutates "
                f"(for {ticket.task.caller.target_key})"))
            return
        # A copy: the task moves on to other steps, its queued call stays filed under this one.
        caller = replace(ticket.task.caller)
        pending = Pending(ticket, call, op, caller, self.clock.now(), ids=batch_ids(call, op))
        self._enqueue(pending)

    def _enqueue(self, pending: Pending) -> None:
        caller, op = pending.caller, pending.op
        key = (caller.account, caller.region, op.pacing_bucket, op.resource_bucket)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = Lane()
        lane.add(pending)

    # ---- out: paced, merged, journaled, sent ----------------------------------------

    def pump(self) -> float | None:
        """Send what the buckets allow; return when the next waiting call may go."""
        now = self.clock.now()
        ready: list[Dispatch] = []
        wake_at: float | None = None
        for (account, region, _bucket, _res), lane in list(self._lanes.items()):
            while True:
                head = lane.head()
                if head is None:
                    break
                op = head[0].op
                when = ready_for_window(head, now, self.batch_window, op.batch_limit)
                if when is None:
                    # Wait for the resource tokens the whole group needs rather than spend
                    # request tokens (shared with Attach/Detach) on trickles of ids.
                    ids = min(op.batch_limit, sum(m.size for m in head))
                    when = self.limiter.ready_at(account, region, op, ids)
                # The bucket read the clock after `now` did: on a real clock that later
                # instant is "ready now", not a reason to wait (which would spin).
                if when > max(now, self.clock.now()):
                    wake_at = when if wake_at is None else min(wake_at, when)
                    break
                members = lane.take(op.batch_limit,
                                    self.limiter.resource_tokens(account, region, op))
                for member in members:
                    self.waited[member.caller.target_key] = now - member.submitted_at
                params, count = merge(members)
                self.limiter.take(account, region, op, count)
                ready.append(Dispatch(members, params, op, account, region, now))
        if ready:
            self._journal_intents(ready)
            for dispatch in ready:
                self._send(dispatch)
        return wake_at

    def _journal_intents(self, dispatches: list[Dispatch]) -> None:
        at = self.clock.wall()
        mutating = [dispatch for dispatch in dispatches if dispatch.mutates]
        for dispatch in mutating:
            # Defence in depth: submit() already refused these.
            assert not self.dry_run, f"dry run reached the network with {dispatch.api}"
            for member in dispatch.members:
                dispatch.call_ids.append(self.journal.call_intent(
                    self.run_id, member.caller.target_key, member.caller.step_id,
                    member.caller.rollback, dispatch.op.service, dispatch.op.name,
                    member.call.params, at, merged=len(dispatch.members) > 1))
        # The intents are on disk before the requests leave: one commit (one fsync) for
        # all of them. Reads need none: the rows written meanwhile (steps, phases) wait
        # for the next intents or for a pause (Journal.commit_stale).
        if mutating:
            self.journal.commit()

    def _send(self, dispatch: Dispatch) -> None:
        client = self.clients(dispatch.account, dispatch.region, dispatch.op.service)
        method = getattr(client, xform_name(dispatch.op.name))
        params = dispatch.params
        self.sent[dispatch.api] += 1
        self.scheduler.io(lambda: method(**params),
                          lambda result, error: self._done(dispatch, result, error))

    # ---- back: results and errors ----------------------------------------------------

    def _done(self, dispatch: Dispatch, result: Any, error: BaseException | None) -> None:
        at = self.clock.wall()
        if error is None:
            response: Mapping[str, Any] = result if isinstance(result, Mapping) else {}
            request_id = str(response.get("ResponseMetadata", {}).get("RequestId", "")) or None
            self.journal.call_results(dispatch.call_ids, at, request_id=request_id,
                                      response=response)
            for member in dispatch.members:
                if dispatch.mutates and not member.caller.rollback:
                    self.mutated.add(member.caller.target_key)
                member.ticket.resolve(response)
            return
        aws = from_exception(error, dispatch.op.name)
        # A timeout or a 5xx: AWS may have done it anyway.
        uncertain = dispatch.mutates and classify(aws.code) is ErrorClass.TRANSIENT
        if uncertain:
            self.mutated.update(m.caller.target_key for m in dispatch.members
                                if not m.caller.rollback)
        self.journal.call_results(dispatch.call_ids, at, request_id=aws.request_id or None,
                                  error=str(aws), uncertain=uncertain)
        if uncertain and not self._resendable(dispatch):
            self._unknown(dispatch, aws)
            return
        self._failed(dispatch, aws)

    @staticmethod
    def _resendable(dispatch: Dispatch) -> bool:
        """Whether the request may be sent again after an unknown outcome: as its
        members' calls say (they merge only when they say the same), else as the
        operation says."""
        wanted = dispatch.members[0].call.on_unknown
        if wanted is not None:
            return wanted == "resend"
        return dispatch.op.resendable(dispatch.params)

    def _unknown(self, dispatch: Dispatch, error: AwsError) -> None:
        """Hand an unknown outcome to each member's action, to reconcile; never resend."""
        live = [m for m in dispatch.members if m.live]
        if not live:
            return
        self.unknown[dispatch.api] += 1
        self.bus.publish(ApiOutcomeUnknown(dispatch.api, error.code,
                                           tuple(m.caller.target_key for m in live)))
        for member in live:
            member.ticket.fail(OutcomeUnknown(error.code, error.message, error.operation,
                                              error.request_id))

    def _failed(self, dispatch: Dispatch, error: AwsError) -> None:
        kind = classify(error.code)
        if kind is ErrorClass.THROTTLED:
            self.limiter.throttled(dispatch.account, dispatch.region, dispatch.op,
                                  dispatch.sent_at)
        live = [m for m in dispatch.members if m.live]
        if not live:
            return
        attempts = max(m.attempt for m in live)
        handled = kind is not ErrorClass.THROTTLED and error.code in live[0].call.handles
        delay = None if handled else self.retry.delay(error.code, attempts)
        if delay is None and kind is ErrorClass.TRANSIENT and dispatch.mutates:
            # Resent (safe to repeat) until the retries ran out, every answer a 5xx: AWS
            # may have done it all the same. Not a failure: the action reconciles.
            self._unknown(dispatch, error)
            return
        if delay is not None:
            self.bus.publish(ApiRetrying(dispatch.api, error.code, attempts, delay,
                                         tuple(m.caller.target_key for m in live),
                                         self.clock.wall()))
            for member in live:
                member.attempt += 1
            self.scheduler.at(self.clock.now() + delay, lambda: self._requeue(live))
            return
        if len(live) > 1 and splittable(error):
            self.bus.publish(Notice("info", f"{dispatch.api} for {len(live)} targets failed "
                                            f"({error.code}); sending it once per target to "
                                            "find which one it is about"))
            for member in live:
                member.attempt, member.solo = 1, True
            self._requeue(live)
            return
        for member in live:
            member.ticket.fail(AwsError(error.code, error.message, error.operation,
                                        error.request_id))

    def _requeue(self, members: list[Pending]) -> None:
        for member in members:
            if member.live:
                member.queued_at = self.clock.now()
                self._enqueue(member)

    def waiting(self) -> int:
        """How many calls wait for a token (for progress and tests)."""
        return sum(len(g) for lane in self._lanes.values() for g in lane.groups.values())

