"""``when`` conditions as Choice rules, or decided at export when they read only params."""

from __future__ import annotations

import pytest

from remediate.export import asl
from remediate.export.conditions import rule
from remediate.export.errors import NotExportable
from remediate.language.model import Condition

FACTS = ("id", "state")


def decide(cond: Condition, **params: object) -> object:
    return rule(cond, params, FACTS, "step x when")


def test_leaves_keep_the_local_semantics() -> None:
    at = "$.steps.a.outputs.healthy"
    assert decide(Condition("equals", "steps.a.outputs.healthy", False)) == asl.equals(at, False)
    assert decide(Condition("not_equals", "target.state", "running")) == asl.negate(
        asl.equals("$.target.state", "running"))
    assert decide(Condition("exists", "steps.a.outputs.x", True)) == asl.present(
        "$.steps.a.outputs.x")
    assert decide(Condition("in", "target.state", ["a", "b"])) == {"Or": [
        asl.equals("$.target.state", "a"), asl.equals("$.target.state", "b")]}
    assert decide(Condition("in", "target.state", [])) is False
    assert decide(Condition("not_in", "target.state", [])) is True


def test_params_decide_at_export_and_simplify_all_any_not() -> None:
    aggressive = Condition("equals", "params.aggressive", True)
    state = Condition("equals", "target.state", "running")

    assert decide(aggressive, aggressive=True) is True
    assert decide(Condition("all", children=(aggressive, state)), aggressive=False) is False
    assert decide(Condition("all", children=(aggressive, state)), aggressive=True) == (
        asl.equals("$.target.state", "running"))
    assert decide(Condition("any", children=(aggressive, state)), aggressive=True) is True
    assert decide(Condition("not", children=(aggressive,)), aggressive=True) is False
    assert decide(Condition("not", children=(state,))) == asl.negate(
        asl.equals("$.target.state", "running"))


def test_a_reference_iterations_cannot_read_does_not_export() -> None:
    with pytest.raises(NotExportable) as raised:
        decide(Condition("equals", "target.tags.team", "sre"))
    assert str(raised.value) == (
        "step x when cannot be exported to Step Functions: ${{ target.tags.team }}: "
        "Step Functions iterations learn only the facts id, state")
