"""What an execution of an exported playbook is started with.

The batches are cut here, on the client, with the local executor's sizes
(``guards.batches``: the canary, then growing batches, the last size repeating),
so the state machine only walks them. AWS caps an execution's input at 256 KiB:
about 3,700 targets in the input itself; beyond that the batches go to S3 and
the input only names their keys (``item_keys``, see :mod:`remediate.export.items`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Final

from remediate.actions.contract import Target
from remediate.executor.guards import batch_sizes
from remediate.export.errors import NotExportable
from remediate.language.model import Playbook

MAX_INPUT_BYTES: Final = 256 * 1024
_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]")
Item = dict[str, str]


def cut_batches(playbook: Playbook, targets: Sequence[Target]) -> list[list[Item]]:
    """The targets as items (``{"id", "region", "account"}``), cut into the run's batches."""
    items = [{"id": t.id, "region": t.region, "account": t.account} for t in targets]
    cut: list[list[Item]] = []
    for size in batch_sizes(playbook.guards.batches, len(items)):
        start = sum(len(b) for b in cut)
        cut.append(items[start:start + size])
    return cut


def execution_input(playbook: Playbook, targets: Sequence[Target], run_id: str,
                    batches: slice = slice(None), *,
                    item_keys: Sequence[str] | None = None) -> dict[str, Any]:
    """``{"run_id": ..., "batches": [[{"id", "region", "account"}, ...], ...]}``, or with
    ``item_keys`` (the batches written to S3) ``{"run_id": ..., "batches": [KEY, ...]}``.

    ``batches`` selects some of the batches ``targets`` are cut into: ``slice(0, 1)``
    is the canary alone and ``slice(1, None)`` the rest, for a run that asks the
    operator in between (``guards.pause_after_canary``).
    """
    if item_keys is not None:
        document: dict[str, Any] = {"run_id": run_id, "batches": list(item_keys)[batches]}
        count = len(targets)
    else:
        chosen = cut_batches(playbook, targets)[batches]
        document, count = {"run_id": run_id, "batches": chosen}, sum(len(b) for b in chosen)
    problem = too_large(document, count)
    if problem:
        raise NotExportable(playbook.name, problem)
    return document


def too_large(document: dict[str, Any], count: int) -> str | None:
    """Why AWS would refuse ``document`` (``count`` targets) as an execution's input."""
    size = len(json.dumps(document, separators=(",", ":")).encode())
    if size <= MAX_INPUT_BYTES:
        return None
    return (f"{count} targets make a {size:,}-byte execution input; AWS takes at most "
            f"{MAX_INPUT_BYTES:,} bytes: pass --items-bucket BUCKET (the batches are then "
            "read from S3), or select fewer targets")


def input_problem(playbook: Playbook, targets: Sequence[Target], run_id: str) -> str | None:
    """Why the targets do not fit in one execution's input (None: they do)."""
    return too_large({"run_id": run_id, "batches": cut_batches(playbook, targets)},
                     len(targets))


def execution_name(run_id: str) -> str:
    """The execution's name: the run id (AWS: 1-80 of letters, digits, - and _).

    Always name executions: moto's interpreter builds the execution ARN from the
    name and an unnamed one ends in ``:None``.
    """
    return _NAME_BAD.sub("-", run_id)[:80] or "remediate"


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN StartExecution gives an execution called ``name`` of that machine (known
    before it starts, so leases can name it first)."""
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"
