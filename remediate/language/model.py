"""The checked playbook: immutable objects built once, after validation.

Loading goes parse -> validate -> apply defaults -> these objects (see
:mod:`remediate.language.loader`); nothing downstream sees raw YAML.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from remediate.aws.apis import Bucket
from remediate.language.template import TemplateError, lookup

OnFailure = Literal["abort", "continue", "rollback"]


@dataclass(frozen=True)
class Retries:
    attempts: int = 1
    initial_delay: float = 5.0
    max_delay: float = 300.0
    multiplier: float = 2.0
    jitter: bool = True


@dataclass(frozen=True)
class Condition:
    """``when``: ``op`` is one of equals, not_equals, in, not_in, exists, all, any, not."""

    op: str
    ref: str = ""
    operand: Any = None
    children: tuple[Condition, ...] = ()

    def refs(self) -> Iterator[str]:
        """Every dotted path the condition reads."""
        if self.ref:
            yield self.ref
        for child in self.children:
            yield from child.refs()

    def describe(self) -> str:
        """The condition as a short phrase, for the dry-run audit."""
        if self.op in ("all", "any"):
            return f" {'and' if self.op == 'all' else 'or'} ".join(
                f"({c.describe()})" for c in self.children)
        if self.op == "not":
            return f"not ({self.children[0].describe()})"
        words = {"equals": "is", "not_equals": "is not", "in": "is one of",
                 "not_in": "is not one of"}
        if self.op == "exists":
            return f"{self.ref} {'exists' if self.operand else 'does not exist'}"
        operand = str(self.operand).lower() if isinstance(self.operand, bool) else self.operand
        return f"{self.ref} {words.get(self.op, self.op)} {operand}"

    def evaluate(self, scope: Mapping[str, Any]) -> bool:
        if self.op == "all":
            return all(child.evaluate(scope) for child in self.children)
        if self.op == "any":
            return any(child.evaluate(scope) for child in self.children)
        if self.op == "not":
            return not self.children[0].evaluate(scope)
        try:
            value = lookup(self.ref, scope)
        except TemplateError:
            value = None
        present = value is not None  # a parameter left unset (null) does not exist
        if self.op == "exists":
            return present == bool(self.operand)
        if self.op == "equals":
            return present and value == self.operand
        if self.op == "not_equals":
            return not present or value != self.operand
        if self.op == "in":
            return present and value in self.operand
        if self.op == "not_in":
            return not present or value not in self.operand
        raise ValueError(f"unknown condition operator {self.op!r}")


@dataclass(frozen=True)
class Step:
    id: str
    action: str
    params: Mapping[str, Any]  # as written under `with`, templates unrendered
    retries: Retries = Retries()
    timeout: float | None = None
    when: Condition | None = None
    on_failure: OnFailure = "rollback"
    description: str = ""


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str  # string, integer, number, boolean, list
    default: Any = None
    required: bool = False
    description: str = ""
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Account:
    name: str
    profile: str | None = None
    role_arn: str | None = None
    external_id: str | None = None


@dataclass(frozen=True)
class TargetSelector:
    kind: str
    ids: tuple[str, ...] = ()
    tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    regions: tuple[str, ...] = ()
    accounts: tuple[Account, ...] = ()


@dataclass(frozen=True)
class BatchSize:
    """A batch of ``count`` targets, or ``percent`` of all selected targets."""

    count: int | None = None
    percent: float | None = None

    def resolve(self, total: int) -> int:
        if self.count is not None:
            return self.count
        assert self.percent is not None
        return max(1, int(total * self.percent / 100.0 + 0.999999))

    def __str__(self) -> str:
        return str(self.count) if self.count is not None else f"{self.percent:g}%"


@dataclass(frozen=True)
class Guards:
    max_targets: int | None = None
    # Canary first, then growing batches; the last one repeats until all are done.
    batches: tuple[BatchSize, ...] = (BatchSize(percent=100.0),)
    # "batches": each batch waits for the previous one's last target. "ramp": the canary
    # batch alone, then the later sizes cap the targets in flight (executor/ramp.py).
    rollout: str = "batches"
    max_failure_percent: float = 100.0
    # Finding kinds the operator must accept (--accept) beyond the built-in ones.
    require_ack: tuple[str, ...] = ()
    # Ask before going on after the first (canary) batch.
    pause_after_canary: bool = True
    # Skip targets already healthy (status checks pass, WorkSpace AVAILABLE): fixed earlier.
    skip_healthy: bool = True


@dataclass(frozen=True)
class Execution:
    concurrency: int = 50
    rate_limits: Mapping[str, Bucket] = field(default_factory=dict)
    poll_interval: float = 15.0
    default_timeout: float = 1800.0


@dataclass(frozen=True)
class Playbook:
    version: int
    name: str
    description: str
    parameters: Mapping[str, Parameter]
    targets: TargetSelector
    steps: tuple[Step, ...]
    rollback: tuple[Step, ...] = ()
    guards: Guards = Guards()
    execution: Execution = Execution()
    source: str = "<string>"
    # The text it was loaded from ("" if built in code): the journal keeps it, so
    # `resume` runs the playbook its run started with, whatever became of the file.
    text: str = field(default="", repr=False, compare=False)

    @property
    def folder(self) -> str:
        """The playbook's folder: script files named in steps are relative to it."""
        folder = os.path.dirname(self.source) or "."
        return folder if not self.source.startswith("<") and os.path.isdir(folder) else "."

    def step(self, step_id: str) -> Step:
        for step in (*self.steps, *self.rollback):
            if step.id == step_id:
                return step
        raise KeyError(step_id)
