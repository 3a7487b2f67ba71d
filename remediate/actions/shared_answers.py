"""Lookups whose answer many targets share (an instance type's storage, a KMS key's
state, the rescue image of a Region), fetched once per run."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from remediate.actions.contract import RunService, StepContext
from remediate.actions.requests import Gate, Request

Steps = Generator[Request, Any, Any]


class SharedAnswers(RunService):
    """Lookups whose answer many targets share, fetched once per run.

    The first target to ask fetches; targets asking meanwhile park on a gate and
    read the answer when it opens, so 10,000 m5.large targets cost one
    DescribeInstanceTypes call (and never a merged call naming a type twice,
    which AWS rejects). If the fetch fails, each parked target fetches for itself.
    """

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.answers: dict[str, Any] = {}
        self.pending: set[str] = set()

    def ask(self, ctx: StepContext, key: str, fetch: Callable[[], Steps]) -> Steps:
        if key in self.answers:
            return self.answers[key]
        if key in self.pending:
            yield Gate(f"shared-answer:{key}")
            if key in self.answers:
                return self.answers[key]
        self.pending.add(key)
        try:
            self.answers[key] = yield from fetch()
        finally:
            self.pending.discard(key)
            ctx.open_gate(f"shared-answer:{key}")
        return self.answers[key]
