"""Calls made outside the executor's scheduler, retried in the caller's thread on a Clock.

The executor retries its calls on its timeline (:mod:`remediate.executor.calls`);
discovery, the lease table and the Step Functions follower make theirs directly.
Those retry here: throttling and transient errors (:mod:`remediate.aws.errors`)
with exponential backoff and full jitter (:class:`~remediate.aws.retry.RetryPolicy`),
waiting on the run's :class:`~remediate.clock.Clock` (a VirtualClock never sleeps
for real); any other error, or the last attempt's, is raised as boto3 raised it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from remediate.actions.requests import AwsError
from remediate.aws.errors import from_exception
from remediate.aws.retry import RetryPolicy
from remediate.clock import Clock

T = TypeVar("T")
# Told of each retry: the error, the attempts made so far, the delay before the next.
OnRetry = Callable[[AwsError, int, float], None]


def retried(call: Callable[[], T], operation: str, clock: Clock,
            policy: RetryPolicy | None = None, on_retry: OnRetry | None = None) -> T:
    """``call()``, again after each throttling or transient error while ``policy`` allows."""
    policy = policy or RetryPolicy()
    attempts = 0
    while True:
        attempts += 1
        try:
            return call()
        except Exception as exc:  # every boto3 failure: classify, then retry or raise
            error = from_exception(exc, operation)
            delay = policy.delay(error.code, attempts)
            if delay is None:
                raise
            if on_retry is not None:
                on_retry(error, attempts, delay)
            clock.sleep(delay)


class RetryingClient:
    """A boto3 client whose API methods go through :func:`retried`; anything else
    (``meta``, ``exceptions``, ``get_paginator``...) is the client's own."""

    def __init__(self, client: Any, clock: Clock, policy: RetryPolicy | None = None,
                 on_retry: OnRetry | None = None) -> None:
        self.client = client
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.on_retry = on_retry

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.client, name)
        operation = self.client.meta.method_to_api_mapping.get(name)
        if operation is None:
            return found

        def call(**params: Any) -> Any:
            return retried(lambda: found(**params), operation, self.clock, self.policy,
                           self.on_retry)

        return call
