"""Triage's calls, paced to AWS's buckets: one thread waits, a few workers send.

Every call spends a token of its API's bucket (:class:`~remediate.aws.ratelimit.
RateLimiter`, sized by :mod:`remediate.aws.apis`), per account and Region. Calls queue
per bucket; the scheduler (the caller's thread, the only one that waits on the clock,
so a VirtualClock stays exact) sends the head of whichever queue gets a token first,
on a pool of workers, so a slow answer holds up no other API. A throttled answer
empties that bucket and lowers its rate for the rest of the triage, and the call goes
again after its backoff (:class:`~remediate.aws.retry.RetryPolicy`); any other error,
or the last attempt's, goes to the call's ``done`` as an :class:`AwsError`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from remediate.actions.requests import AwsError
from remediate.aws.apis import Operation, operation
from remediate.aws.clients import ClientFactory
from remediate.aws.errors import THROTTLING_CODES, from_exception
from remediate.aws.ratelimit import RateLimiter
from remediate.aws.retry import RetryPolicy
from remediate.clock import Clock

Done = Callable[[Mapping[str, Any] | None, AwsError | None], None]
"""Told the answer, or the error once retries are spent."""


@dataclass
class Call:
    account: str
    region: str
    service: str
    name: str
    params: Mapping[str, Any]
    done: Done
    resources: int = 0
    not_before: float = float("-inf")
    attempts: int = 0

    @property
    def op(self) -> Operation:
        return operation(self.service, self.name)

    @property
    def bucket(self) -> tuple[str, str, str]:
        return self.account, self.region, self.op.pacing_bucket


@dataclass
class PacedCalls:
    clients: ClientFactory
    clock: Clock
    limiter: RateLimiter
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    workers: int = 8
    _queues: dict[tuple[str, str, str], deque[Call]] = field(default_factory=dict)
    _wake: threading.Event = field(default_factory=threading.Event)

    def add(self, call: Call) -> None:
        self._queues.setdefault(call.bucket, deque()).append(call)

    def _next(self) -> tuple[float, deque[Call]] | None:
        best: tuple[float, deque[Call]] | None = None
        for queue in self._queues.values():
            if queue:
                head = queue[0]
                when = max(head.not_before, self.limiter.ready_at(
                    head.account, head.region, head.op, head.resources))
                if best is None or when < best[0]:
                    best = when, queue
        return best

    def _send(self, call: Call) -> tuple[Call, float, Mapping[str, Any] | None,
                                         BaseException | None]:
        sent_at = self.clock.now()
        client = self.clients.client(call.service, call.region, call.account)
        method = getattr(client, _snake(call.name))
        try:
            return call, sent_at, method(**call.params), None
        except Exception as exc:  # every boto3 failure: classified in _finish
            return call, sent_at, None, exc

    def _finish(self, future: Future[Any]) -> None:
        call, sent_at, answer, exc = future.result()
        if exc is None:
            call.done(answer, None)
            return
        error = from_exception(exc, call.name)
        delay = self.policy.delay(error.code, call.attempts)
        if delay is None:
            call.done(None, error)
            return
        if error.code in THROTTLING_CODES:
            self.limiter.throttled(call.account, call.region, call.op, sent_at)
        call.not_before = self.clock.now() + delay
        self._queues[call.bucket].appendleft(call)

    def run(self) -> None:
        """Send every call added (and every call their ``done`` adds), then return."""
        inflight: set[Future[Any]] = set()
        with ThreadPoolExecutor(max_workers=self.workers,
                                thread_name_prefix="triage") as pool:
            while True:
                finished = {f for f in inflight if f.done()}
                for future in finished:
                    self._finish(future)
                inflight -= finished
                head = self._next()
                if head is None or len(inflight) >= self.workers:
                    if not inflight:
                        return
                    wait(inflight, return_when=FIRST_COMPLETED)
                    continue
                when, queue = head
                if when > self.clock.now():
                    self._wake.clear()
                    if not any(f.done() for f in inflight):
                        self.clock.sleep_until(when, self._wake)
                    continue
                call = queue.popleft()
                call.attempts += 1
                self.limiter.take(call.account, call.region, call.op, call.resources)
                future = pool.submit(self._send, call)
                future.add_done_callback(lambda _: self._wake.set())
                inflight.add(future)


def _snake(name: str) -> str:
    from botocore import xform_name

    return str(xform_name(name))
