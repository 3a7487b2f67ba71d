"""A playbook as an Amazon States Language state machine.

The machine takes ``{"run_id": ..., "batches": [[target, ...], ...]}`` (see
:func:`remediate.export.run_input.execution_input`) and runs the batches one
after the other, each as a Distributed Map over its targets, like the local
executor's batches (the canary first; the next batch starts when the last
target of the previous one has finished). The Map's ``MaxConcurrency`` is
``execution.concurrency`` and its ``ToleratedFailurePercentage`` is
``guards.max_failure_percent``: a batch whose failures exceed it fails the
execution before the next batch starts (AWS counts per Map Run, so per batch;
the local budget counts over the whole run).

``guards.pause_after_canary`` is the caller's: start one execution with the
canary batch, ask, then another with the other batches
(:func:`remediate.export.run_input.execution_input` cuts them either way).

With ``items_bucket`` the input's batches are S3 keys instead of lists of
targets, and each Map reads its batch with an ItemReader
(:mod:`remediate.export.items`): for runs over more targets than an execution's
input can hold.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from remediate.actions.ec2_inspect import STEPFUNCTIONS_FACTS
from remediate.actions.workspaces import EXPORTED_FACTS as WORKSPACE_FACTS
from remediate.export import asl
from remediate.export.asl import MOTO_UNSAFE_PATH, States
from remediate.export.errors import NotExportable
from remediate.export.items import item_reader
from remediate.export.iteration import Iteration
from remediate.language.model import Playbook

# Facts each kind's inspection gathers on Step Functions (kinds missing here do not
# export): a template naming another fact does not export.
KIND_FACTS: Final = {"ec2-instance": STEPFUNCTIONS_FACTS, "workspace": WORKSPACE_FACTS}
# AWS's limit on a state machine definition.
MAX_DEFINITION_BYTES: Final = 1_048_576


@dataclass(frozen=True)
class DefinitionSize:
    bytes: int
    states: int

    def __str__(self) -> str:
        return f"{self.bytes:,} bytes, {self.states} states"


def compile_playbook(playbook: Playbook, params: Mapping[str, Any], *,
                     role_arn: str | None = None, accepted: frozenset[str] = frozenset(),
                     base_dir: str | None = None,
                     items_bucket: str | None = None) -> dict[str, Any]:
    """The ASL definition of ``playbook`` with ``params`` bound (the values
    :func:`remediate.language.loader.bind_params` returns: defaults and ``--param``s).

    ``role_arn``: every SDK call assumes this role (targets in another account);
    ``accepted``: finding kinds the operator accepted (``--accept``); ``base_dir``:
    where script paths are relative to (default: the playbook's folder);
    ``items_bucket``: the batches are read from this S3 bucket. Raises
    :class:`NotExportable` naming the first step, action or feature that cannot be
    expressed.
    """
    _check_supported(playbook)
    facts = KIND_FACTS[playbook.targets.kind]
    folder = base_dir if base_dir is not None else _folder(playbook.source)
    processor = Iteration(playbook, params, facts, accepted, folder).build()
    processor["ProcessorConfig"] = {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    if role_arn:
        _assume(processor["States"], role_arn)
    definition = {
        "Comment": f"remediate playbook {playbook.name}: {playbook.description}"[:1000],
        "StartAt": "set up batches",
        "States": _batches(playbook, processor, items_bucket),
    }
    unsafe = sorted(set(unsafe_paths(definition)))
    if unsafe:  # a fragment bug, not the playbook's: fail loudly
        raise AssertionError(f"paths moto reads differently from AWS: {', '.join(unsafe)}")
    size = definition_size(definition)
    if size.bytes > MAX_DEFINITION_BYTES:
        raise NotExportable(playbook.name, f"the definition is {size}; AWS takes at most "
                                           f"{MAX_DEFINITION_BYTES:,} bytes")
    return definition


def _folder(source: str) -> str:
    return os.path.dirname(os.path.abspath(source)) if source != "<string>" else "."


def _check_supported(playbook: Playbook) -> None:
    if playbook.targets.kind not in KIND_FACTS:
        raise NotExportable(playbook.name, f"targets of kind {playbook.targets.kind} have no "
                                           "Step Functions inspection")
    if len(playbook.targets.regions) > 1:
        raise NotExportable(playbook.name, "a state machine works in its own Region: export "
                                           "one per Region (targets.regions lists "
                                           f"{', '.join(playbook.targets.regions)})")
    roles = {a.role_arn for a in playbook.targets.accounts}
    if len(playbook.targets.accounts) > 1 or (playbook.targets.accounts and None in roles):
        raise NotExportable(playbook.name, "targets.accounts: a state machine reaches one "
                                           "account (pass role_arn); export one per account")


def _assume(states: States, role_arn: str) -> None:
    for state in _walk(states):
        if state.get("Type") == "Task" and ":aws-sdk:" in state.get("Resource", ""):
            state["Credentials"] = {"RoleArn": role_arn}


def _walk(states: States) -> Iterator[dict[str, Any]]:
    for state in states.values():
        yield state
        for branch in state.get("Branches", []):
            yield from _walk(branch["States"])
        if "ItemProcessor" in state:
            yield from _walk(state["ItemProcessor"]["States"])


def _batches(playbook: Playbook, processor: dict[str, Any], items_bucket: str | None) -> States:
    guards, concurrency = playbook.guards, playbook.execution.concurrency
    batch = asl.Ref("States.ArrayGetItem($.batches, $.at.n)")
    items: dict[str, Any] = {"ItemsPath": "$.batch.items"}
    if items_bucket is not None:
        items = {"ItemReader": item_reader(items_bucket, "$.batch.key")}
    states: States = {
        "set up batches": asl.pass_state("next batch", parameters={
            "run": {"id": asl.path("$.run_id")}, "batches": asl.path("$.batches"),
            "count": asl.Ref("States.ArrayLength($.batches)"), "at": {"n": 0}}),
        "next batch": asl.choice(
            [({"Variable": "$.at.n", "NumericGreaterThanEqualsPath": "$.count"},
              "all batches done")], "take batch"),
        "take batch": asl.pass_state("targets", parameters={
            "items" if items_bucket is None else "key": batch}, result_path="$.batch"),
        "targets": {
            "Type": "Map",
            "Comment": "one child execution per target",
            **items,
            "ItemSelector": {"target.$": "$$.Map.Item.Value", "run.$": "$.run"},
            "MaxConcurrency": concurrency,
            "ToleratedFailurePercentage": float(guards.max_failure_percent),
            "Label": "targets",
            "ItemProcessor": processor,
            "ResultPath": None,
            "Catch": [{"ErrorEquals": ["States.ExceedToleratedFailureThreshold"],
                       "ResultPath": "$.budget", "Next": "failure budget spent"}],
            "Next": "batch done",
        },
        "batch done": asl.pass_state("next batch", parameters={
            "n": asl.add(asl.path("$.at.n"), 1)}, result_path="$.at"),
        "failure budget spent": asl.fail("remediate.FailureBudgetSpent", asl.fmt(
            f"more than {guards.max_failure_percent:g}% of the targets of batch ",
            asl.path("$.at.n"), " failed; later batches were not started")),
        "all batches done": {"Type": "Succeed"},
    }
    return states


def definition_size(definition: Mapping[str, Any]) -> DefinitionSize:
    """Bytes of the JSON AWS stores, and states counted through Parallel and Map."""
    text = json.dumps(definition, separators=(",", ":"))
    return DefinitionSize(len(text.encode()), sum(1 for _ in _walk(definition["States"])))


def unsafe_paths(value: Any) -> Iterator[str]:
    """JSONPaths in ``value`` that moto's interpreter reads differently from AWS."""
    if isinstance(value, str):
        yield from MOTO_UNSAFE_PATH.findall(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if key != "Result":  # data, not paths
                yield from unsafe_paths(item)
    elif isinstance(value, list):
        for item in value:
            yield from unsafe_paths(item)
