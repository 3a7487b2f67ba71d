"""Exported definitions follow AWS's rules that moto does not check: every state name
unique in the whole definition (Parallel branches and Map processors included), every
state reachable from its StartAt; and no path moto reads differently from AWS. (The
asl-validator npm package checks the same exports and more: test_asl_validator.py.)"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from sfn_support import builtin, one_step

from remediate.export import compile_playbook
from remediate.export.compiler import unsafe_paths

RUN_COMMAND = ("{id: fix, action: ssm.run_command, with: {script: "
               "scripts/crowdstrike-offline-repair.sh, document: AWS-RunShellScript}}")
SAME_AMI = frozenset({"same-ami-rescue"})
# (playbook, --param values, --accept kinds)
EXPORTS = [("ec2-reboot-first.yaml", {}, frozenset()),
           ("ec2-replace-root-volume.yaml", {}, frozenset()),
           ("ec2-replace-root-volume.yaml", {"snapshot_id": "snap-0123456789abcdef0"},
            frozenset()),
           ("ec2-offline-repair.yaml", {}, frozenset()),
           ("ec2-offline-repair.yaml", {"rescue_image_id": "ami-0123456789"}, frozenset()),
           ("ec2-offline-repair.yaml", {"rescue_image_id": "ami-0123456789"}, SAME_AMI),
           (RUN_COMMAND, {}, frozenset())]
IDS = ["reboot-first", "replace-root-launch-state", "replace-root-snapshot",
       "offline-repair-resolve", "offline-repair-ami", "offline-repair-accepted", "run-command"]


def definition(name: str, params: Mapping[str, str],
               accepted: frozenset[str]) -> dict[str, Any]:
    playbook, bound = (one_step("ec2-instance", name) if name == RUN_COMMAND
                       else builtin(name, **params))
    return compile_playbook(playbook, bound, accepted=accepted)


def machines(states_map: Mapping[str, Any], start: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every (StartAt, States) of the definition: itself, each branch, each processor."""
    yield start, states_map
    for state in states_map.values():
        for branch in state.get("Branches", []):
            yield from machines(branch["States"], branch["StartAt"])
        if "ItemProcessor" in state:
            yield from machines(state["ItemProcessor"]["States"],
                                state["ItemProcessor"]["StartAt"])


def unreachable(start: str, states: Mapping[str, Any]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        state = states[name]
        todo.extend(t for t in (state.get("Next"), state.get("Default")) if t)
        todo.extend(c["Next"] for c in (*state.get("Choices", []), *state.get("Catch", [])))
    return set(states) - seen


@pytest.mark.parametrize(("name", "params", "accepted"), EXPORTS, ids=IDS)
def test_state_names_are_unique_and_every_state_is_reachable(
        name: str, params: Mapping[str, str], accepted: frozenset[str]) -> None:
    found = definition(name, params, accepted)
    parts = list(machines(found["States"], found["StartAt"]))

    names = Counter(n for _, states in parts for n in states)
    assert [n for n, count in names.items() if count > 1] == []
    assert [sorted(unreachable(start, states)) for start, states in parts
            if unreachable(start, states)] == []
    assert list(unsafe_paths(found)) == []

