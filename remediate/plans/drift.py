"""What an approved plan pins about each target, and how a target has moved since.

An incident commander approves a plan for the targets as inspection read them.
If one of them has changed by the time the plan is applied (stopped by someone,
its root volume swapped, resized, or no longer tagged as selected), the plan
said nothing about that machine: the run refuses it and shows what changed,
``i-0abc: root volume vol-a -> vol-b``. Only facts that change what the steps
do, or whether the target was selected at all, are pinned; status checks are
expected to differ (the target is broken).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

# Target kind -> the facts pinned by a plan, and their words in a diff.
PINNED: Final[Mapping[str, Mapping[str, str]]] = {
    "ec2-instance": {"state": "state", "root_volume_id": "root volume",
                     "instance_type": "instance type"},
    "workspace": {"state": "state", "bundle_id": "bundle"},
}
TAG_PREFIX: Final = "tag:"
ABSENT: Final = "(none)"


def pinned_facts(kind: str, facts: Mapping[str, Any],
                 selecting_tags: Sequence[str]) -> dict[str, Any]:
    """The facts of one target a plan pins: ``PINNED[kind]``, and the value of each tag
    the selector chose it by (``tag:KEY``; None: the tag is absent)."""
    pinned = {name: facts.get(name) for name in PINNED.get(kind, {})}
    tags = facts.get("tags") or {}
    for key in sorted(selecting_tags):
        pinned[TAG_PREFIX + key] = tags.get(key) if isinstance(tags, Mapping) else None
    return pinned


def drift(kind: str, planned: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """How the target moved from ``planned`` (its pinned facts) to ``now`` (its facts as
    inspected now), one ``what old -> new`` per changed fact, in ``planned``'s order."""
    words = PINNED.get(kind, {})
    tags = now.get("tags") or {}
    changes = []
    for name, old in planned.items():
        if name.startswith(TAG_PREFIX):
            key = name.removeprefix(TAG_PREFIX)
            new = tags.get(key) if isinstance(tags, Mapping) else None
            label = f"tag {key}"
        else:
            new, label = now.get(name), words.get(name, name)
        if new != old:
            changes.append(f"{label} {_shown(old)} -> {_shown(new)}")
    return changes


def _shown(value: Any) -> str:
    return ABSENT if value is None else str(value)
