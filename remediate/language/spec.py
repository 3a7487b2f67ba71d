"""The playbook language, version 1, declared as data: the one source of truth.

The validator checks documents against these nodes; ``remediate schema`` renders
them (plus every registered action's parameters) as JSON Schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from remediate.aws.apis import RATE_LIMIT_NAMES
from remediate.findings import ACKNOWLEDGEABLE
from remediate.kinds import KIND_NAMES
from remediate.language.problems import Path, Problems
from remediate.language.schema import (
    INVALID,
    Anything,
    Bool,
    Choice,
    Const,
    Duration,
    Either,
    Field,
    Int,
    ListOf,
    MapOf,
    Node,
    Number,
    Record,
    Str,
    describe,
)

LANGUAGE_VERSION: Final = 1
IDENT: Final = r"[a-z][a-z0-9_]{0,62}"
IDENT_NAME: Final = "an identifier (lower case letters, digits and _, starting with a letter)"
REFERENCE: Final = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_-]+)+"
CONDITION_OPERATORS: Final = ("equals", "not_equals", "in", "not_in", "exists")
CONDITION_COMBINATORS: Final = ("all", "any", "not")
PARAMETER_TYPES: Final = ("string", "integer", "number", "boolean", "list")
ROLLOUTS: Final = ("batches", "ramp")


@dataclass
class ConditionNode(Node):
    """``when``: a test on one reference, or all/any/not of such tests."""

    description: str = ""

    def expected(self) -> str:
        return ("a condition: {value: <reference>, <operator>: ...} with an operator of "
                + ", ".join(CONDITION_OPERATORS) + "; or all/any: [conditions]; or not: "
                "condition")

    def json_schema(self) -> dict[str, Any]:
        ref = {"type": "string", "pattern": REFERENCE}
        test = {"type": "object", "required": ["value"], "additionalProperties": False,
                "minProperties": 2, "maxProperties": 2,
                "properties": {"value": ref, "equals": {}, "not_equals": {},
                               "in": {"type": "array"}, "not_in": {"type": "array"},
                               "exists": {"type": "boolean"}}}
        return self._schema({"anyOf": [
            test,
            {"type": "object", "additionalProperties": False, "minProperties": 1,
             "maxProperties": 1,
             "properties": {"all": {"type": "array", "items": {"$ref": "#/$defs/condition"}},
                            "any": {"type": "array", "items": {"$ref": "#/$defs/condition"}},
                            "not": {"$ref": "#/$defs/condition"}}},
        ]})

    def check(self, value: Any, path: Path, problems: Problems) -> Any:
        if not isinstance(value, Mapping) or not value:
            return self._wrong(value, path, problems)
        keys = set(value)
        combinators = keys & set(CONDITION_COMBINATORS)
        if combinators:
            if len(keys) != 1:
                problems.add(path, f"expected {sorted(combinators)[0]!r} alone in its mapping, "
                                   f"found also {', '.join(sorted(keys - combinators))}",
                             "nest the other tests inside it")
                return INVALID
            (op,) = combinators
            if op == "not":
                return {op: self.check(value[op], (*path, op), problems)}
            items = value[op]
            if not isinstance(items, list) or not items:
                problems.add((*path, op), f"expected a non-empty list of conditions, "
                                          f"found {describe(items)}")
                return INVALID
            return {op: [self.check(item, (*path, op, i), problems)
                         for i, item in enumerate(items)]}
        unknown = keys - {"value", *CONDITION_OPERATORS}
        for key in sorted(unknown):
            from remediate.language.schema import did_you_mean

            hint = did_you_mean(key, ["value", *CONDITION_OPERATORS, *CONDITION_COMBINATORS])
            problems.add((*path, key), f"unknown key {key!r}", hint or self.expected(),
                         at_key=True)
        if unknown:
            return INVALID
        if "value" not in value:
            problems.add(path, "missing required key 'value' (the reference to test, e.g. "
                               "steps.reboot.outputs.healthy)")
            return INVALID
        ops = keys & set(CONDITION_OPERATORS)
        if len(ops) != 1:
            problems.add(path, "expected exactly one operator ("
                         + ", ".join(CONDITION_OPERATORS) + f"), found {len(ops)}")
            return INVALID
        ref = Str(pattern=REFERENCE, pattern_name="a reference like steps.<id>.outputs.<name>, "
                  "target.<fact> or params.<name>").check(value["value"], (*path, "value"),
                                                          problems)
        (op,) = ops
        operand = value[op]
        if op in ("in", "not_in") and not isinstance(operand, list):
            problems.add((*path, op), f"expected a list of values, found {describe(operand)}")
            return INVALID
        if op == "exists" and not isinstance(operand, bool):
            problems.add((*path, op), f"expected true or false, found {describe(operand)}")
            return INVALID
        return INVALID if ref is INVALID else {"value": ref, op: operand}


def _percent_or_count() -> Node:
    return Either(options=(
        Int(minimum=1),
        Str(pattern=r"(100|[1-9][0-9]?)(\.[0-9]+)?%", pattern_name="a percentage like '25%'"),
    ))


RETRIES = Record(title="a retries mapping", fields={
    "attempts": Field(Int(1, 100), default=1,
                      description="How many times the step may run in all (1 = no retry)."),
    "delay": Field(Duration(0, 3600), default=5.0,
                   description="Delay before the first retry; grows by `multiplier`."),
    "max_delay": Field(Duration(0, 6 * 3600), default=300.0,
                       description="Upper bound of one delay."),
    "multiplier": Field(Number(1, 10), default=2.0, description="Exponential backoff factor."),
    "jitter": Field(Bool(), default=True,
                    description="Full jitter: each delay is random between 0 and its bound."),
})


def step_node() -> Record:
    # `action` is checked against the registry and `with` against the action's own schema
    # by the loader (they depend on each other), not here.
    return Record(title="a step mapping", fields={
        "id": Field(Str(pattern=IDENT, pattern_name=IDENT_NAME), required=True,
                    description="Unique within the playbook; later steps refer to it."),
        "action": Field(Str(pattern=r"[a-z0-9]+\.[a-z0-9_]+",
                            pattern_name="an action name like ec2.stop"),
                        required=True, description="An action from `remediate list-actions`."),
        "with": Field(MapOf(value=Anything(), key=Str(pattern=IDENT, pattern_name=IDENT_NAME),
                            title="a mapping of the action's parameters"),
                      default={}, description="The action's parameters."),
        "description": Field(Str(min_len=0), default=""),
        "retries": Field(RETRIES, default=None),
        "timeout": Field(Duration(1, 48 * 3600), default=None,
                         description="Fail the attempt when it runs longer."),
        "when": Field(ConditionNode(), default=None,
                      description="Run the step only when this holds; otherwise skip it."),
        "on_failure": Field(Choice(values=("rollback", "abort", "continue")), default="rollback",
                            description="rollback: run the playbook's rollback steps (if the "
                                        "target got past a mutating step), then fail; abort: "
                                        "fail the target as it is; continue: record the "
                                        "failure and go on."),
    })


PARAMETER = Record(title="a parameter mapping", fields={
    "type": Field(Choice(values=PARAMETER_TYPES), required=True),
    "description": Field(Str(min_len=0), default=""),
    "default": Field(Anything(), description="Used when --param does not set it."),
    "required": Field(Bool(), default=False),
    "choices": Field(ListOf(item=Anything(), min_items=1), default=None),
})

ACCOUNT = Record(title="an account mapping", fields={
    "name": Field(Str(pattern=r"[A-Za-z0-9_.@-]{1,64}", pattern_name="an account label"),
                  required=True),
    "profile": Field(Str(), default=None, description="A profile from ~/.aws/config."),
    "role_arn": Field(Str(pattern=r"arn:aws[a-z-]*:iam::\d{12}:role/.+",
                          pattern_name="an IAM role ARN"), default=None),
    "external_id": Field(Str(), default=None),
})

_VALUES = ListOf(item=Either(options=(Str(), Int())), min_items=1, max_items=200,
                 accept_scalar=True)

TARGETS = Record(title="a targets mapping", fields={
    "kind": Field(Choice(values=KIND_NAMES), required=True),
    "ids": Field(ListOf(item=Str(pattern=r"(i|ws)-[0-9a-z]+", pattern_name="an instance id "
                                 "(i-...) or WorkSpace id (ws-...)"), max_items=100_000),
                 default=[]),
    "tags": Field(MapOf(value=_VALUES, key=Str(max_len=128)), default={},
                  description="Tag key -> value or list of values (any of them)."),
    "filters": Field(MapOf(value=_VALUES, key=Str(pattern=r"[a-z][a-z0-9.:-]*",
                                                  pattern_name="an EC2 filter name")),
                     default={}, description="EC2 DescribeInstances filters."),
    "regions": Field(ListOf(item=Str(pattern=r"[a-z]{2}(-[a-z]+)+-\d",
                                     pattern_name="a Region name like us-east-1"),
                            accept_scalar=True), default=[]),
    "accounts": Field(ListOf(item=ACCOUNT), default=[]),
})

GUARDS = Record(title="a guards mapping", fields={
    "max_targets": Field(Int(minimum=1), default=None,
                         description="Refuse the run when more targets are selected."),
    "batches": Field(ListOf(item=_percent_or_count(), min_items=1, max_items=20),
                     default=["100%"],
                     description="Canary first, then growing batches (e.g. [1, 5%, 25%, "
                                 "100%]); the last size repeats."),
    "rollout": Field(Choice(values=ROLLOUTS), default="batches",
                     description="batches: each batch starts when the previous one has "
                                 "finished. ramp: the canary batch alone first, then no "
                                 "barrier: the later sizes cap the targets in flight, each "
                                 "cap opening once as many results are in as batches would "
                                 "have waited for."),
    "max_failure_percent": Field(Number(0, 100), default=100.0,
                                 description="Stop starting targets once more than this share "
                                             "of the started ones failed."),
    "require_ack": Field(ListOf(item=Choice(values=ACKNOWLEDGEABLE)), default=[],
                         description="Findings the operator must accept with --accept."),
    "pause_after_canary": Field(Bool(), default=True,
                                description="Ask before going on after the first batch."),
    "skip_healthy": Field(Bool(), default=True,
                          description="Skip targets already healthy (instances whose status "
                                      "checks pass, AVAILABLE WorkSpaces), e.g. fixed by an "
                                      "earlier route or run."),
})

BUCKET = Record(title="a rate-limit mapping", fields={
    "burst": Field(Number(1, 100_000), required=True, description="Bucket size."),
    "rate": Field(Number(0.01, 100_000), required=True, description="Refill per second."),
})

EXECUTION = Record(title="an execution mapping", fields={
    "concurrency": Field(Int(1, 100_000), default=50,
                         description="Targets in flight at once, per account and Region."),
    "rate_limits": Field(MapOf(value=BUCKET, key=Choice(values=RATE_LIMIT_NAMES,
                                                        name="a rate bucket name"),
                               title="a mapping of bucket names to {burst, rate}"),
                         default={},
                         description="Client-side token buckets, per account and Region. "
                                     "A category (ec2.mutating) sizes the bucket of each of "
                                     "its APIs (EC2 gives every API its own); an API "
                                     "(ec2.AttachVolume) sizes its own and wins over its "
                                     "category."),
    "poll_interval": Field(Duration(0.1, 600), default=15.0,
                           description="How often waits are polled (one Describe per batch)."),
    "default_timeout": Field(Duration(1, 48 * 3600), default=1800.0),
})

PLAYBOOK = Record(title="a playbook mapping", fields={
    "version": Field(Const(value=LANGUAGE_VERSION), required=True,
                     description="The playbook language version."),
    "name": Field(Str(pattern=r"[a-z0-9][a-z0-9-]{0,62}",
                      pattern_name="a name of lower case letters, digits and -"),
                  required=True),
    "description": Field(Str(min_len=0), default=""),
    "parameters": Field(MapOf(value=PARAMETER, key=Str(pattern=IDENT,
                                                       pattern_name=IDENT_NAME)), default={}),
    "targets": Field(TARGETS, required=True),
    "steps": Field(ListOf(item=step_node(), min_items=1, max_items=200), required=True),
    "rollback": Field(ListOf(item=step_node(), max_items=100), default=[],
                      description="Compensation steps for a target that fails after a "
                                  "mutating step."),
    "guards": Field(GUARDS, default={}),
    "execution": Field(EXECUTION, default={}),
})
