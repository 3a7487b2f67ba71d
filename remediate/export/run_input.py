"""What an execution of an exported playbook is started with.

The batches are cut here, on the client, with the local executor's sizes
(``guards.batches``: the canary, then growing batches, the last size repeating),
so the state machine only walks them. AWS caps an execution's input at 256 KiB:
about 3,700 targets per execution; :func:`execution_input` refuses more.
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


def execution_input(playbook: Playbook, targets: Sequence[Target], run_id: str,
                    batches: slice = slice(None)) -> dict[str, Any]:
    """``{"run_id": ..., "batches": [[{"id", "region", "account"}, ...], ...]}``.

    ``batches`` selects some of the batches ``targets`` are cut into: ``slice(0, 1)``
    is the canary alone and ``slice(1, None)`` the rest, for a run that asks the
    operator in between (``guards.pause_after_canary``).
    """
    items = [{"id": t.id, "region": t.region, "account": t.account} for t in targets]
    cut: list[list[dict[str, str]]] = []
    for size in batch_sizes(playbook.guards.batches, len(items)):
        start = sum(len(b) for b in cut)
        cut.append(items[start:start + size])
    document = {"run_id": run_id, "batches": cut[batches]}
    size = len(json.dumps(document, separators=(",", ":")).encode())
    if size > MAX_INPUT_BYTES:
        count = sum(len(batch) for batch in document["batches"])
        raise NotExportable(playbook.name, f"{count} targets make a {size:,}-byte "
                                           f"input; AWS takes {MAX_INPUT_BYTES:,}: start "
                                           "several executions (split the targets)")
    return document


def execution_name(run_id: str) -> str:
    """The execution's name: the run id (AWS: 1-80 of letters, digits, - and _).

    Always name executions: moto's interpreter builds the execution ARN from the
    name and an unnamed one ends in ``:None``.
    """
    return _NAME_BAD.sub("-", run_id)[:80] or "remediate"
