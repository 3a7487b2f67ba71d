"""Execution input: batches cut like the local executor's, and AWS's input size limit."""

from __future__ import annotations

import pytest
from sfn_support import builtin

from remediate.actions.contract import Target
from remediate.export import NotExportable, execution_input, execution_name


def targets(count: int) -> list[Target]:
    return [Target("ec2-instance", f"i-{n:017x}", "us-east-1") for n in range(count)]


def test_batches_are_the_canary_then_growing_batches() -> None:
    playbook, _ = builtin("ec2-reboot-first.yaml")  # batches: [1, 5%, 25%, 100%]

    document = execution_input(playbook, targets(40), "run-1")

    assert document["run_id"] == "run-1"
    assert [len(b) for b in document["batches"]] == [1, 2, 10, 27]
    assert document["batches"][0] == [{"id": "i-00000000000000000", "region": "us-east-1",
                                       "account": "default"}]


def test_the_canary_can_run_alone_and_the_rest_after() -> None:
    playbook, _ = builtin("ec2-reboot-first.yaml")

    canary = execution_input(playbook, targets(40), "run-1", batches=slice(0, 1))
    rest = execution_input(playbook, targets(40), "run-1", batches=slice(1, None))

    assert [len(b) for b in canary["batches"]] == [1]
    assert [len(b) for b in rest["batches"]] == [2, 10, 27]
    assert rest["batches"][0][0]["id"] == "i-00000000000000001"


def test_more_targets_than_one_input_can_hold_are_refused() -> None:
    playbook, _ = builtin("ec2-reboot-first.yaml")
    with pytest.raises(NotExportable) as raised:
        execution_input(playbook, targets(5000), "run-1")
    assert str(raised.value) == (
        "ec2-reboot-first cannot be exported to Step Functions: 5000 targets make a "
        "350,038-byte input; AWS takes 262,144: start several executions (split the targets)")


def test_execution_names_are_what_aws_accepts() -> None:
    assert execution_name("2024-07-19T05:30 run#1") == "2024-07-19T05-30-run-1"
    assert execution_name("") == "remediate"
    assert len(execution_name("x" * 200)) == 80
