"""Execution input: batches cut like the local executor's, and AWS's input size limit."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sfn_support import builtin

from remediate.actions.contract import Target
from remediate.export import NotExportable, execution_input, execution_name
from remediate.export.items import item_key
from remediate.export.run_input import cut_batches, execution_arn, input_problem
from remediate.language.model import BatchSize, Playbook


def staged() -> Playbook:
    """reboot-first with barriers at [1, 5%, 25%, 100%] (it ships with [1, 100%])."""
    playbook, _ = builtin("ec2-reboot-first.yaml")
    stages = (BatchSize(count=1), BatchSize(percent=5), BatchSize(percent=25),
              BatchSize(percent=100))
    return replace(playbook, guards=replace(playbook.guards, batches=stages,
                                            rollout="batches"))


def targets(count: int) -> list[Target]:
    return [Target("ec2-instance", f"i-{n:017x}", "us-east-1") for n in range(count)]


def test_batches_are_the_canary_then_growing_batches() -> None:
    playbook = staged()

    document = execution_input(playbook, targets(40), "run-1")

    assert document["run_id"] == "run-1"
    assert [len(b) for b in document["batches"]] == [1, 2, 10, 27]
    assert document["batches"][0] == [{"id": "i-00000000000000000", "region": "us-east-1",
                                       "account": "default"}]


def test_the_canary_can_run_alone_and_the_rest_after() -> None:
    playbook = staged()

    canary = execution_input(playbook, targets(40), "run-1", batches=slice(0, 1))
    rest = execution_input(playbook, targets(40), "run-1", batches=slice(1, None))

    assert [len(b) for b in canary["batches"]] == [1]
    assert [len(b) for b in rest["batches"]] == [2, 10, 27]
    assert rest["batches"][0][0]["id"] == "i-00000000000000001"


TOO_MANY = ("5000 targets make a 350,038-byte execution input; AWS takes at most 262,144 "
            "bytes: pass --items-bucket BUCKET (the batches are then read from S3), or select "
            "fewer targets")


def test_more_targets_than_one_input_can_hold_are_refused() -> None:
    playbook = staged()
    with pytest.raises(NotExportable) as raised:
        execution_input(playbook, targets(5000), "run-1")
    assert str(raised.value) == f"ec2-reboot-first cannot be exported to Step Functions: {TOO_MANY}"
    assert input_problem(playbook, targets(5000), "run-1") == TOO_MANY
    assert input_problem(playbook, targets(3000), "run-1") is None


def test_with_the_batches_in_s3_the_input_names_their_keys_whatever_the_count() -> None:
    playbook = staged()
    many = targets(50_000)
    keys = [item_key("run-1", n) for n in range(len(cut_batches(playbook, many)))]

    whole = execution_input(playbook, many, "run-1", item_keys=keys)
    rest = execution_input(playbook, many, "run-1", slice(1, None), item_keys=keys)

    assert [len(b) for b in cut_batches(playbook, many)] == [1, 2500, 12500, 34999]
    assert whole == {"run_id": "run-1", "batches": [
        "remediate/run-1/batch-0001.json", "remediate/run-1/batch-0002.json",
        "remediate/run-1/batch-0003.json", "remediate/run-1/batch-0004.json"]}
    assert rest["batches"] == whole["batches"][1:]


def test_execution_names_are_what_aws_accepts() -> None:
    assert execution_name("2024-07-19T05:30 run#1") == "2024-07-19T05-30-run-1"
    assert execution_name("") == "remediate"
    assert len(execution_name("x" * 200)) == 80


def test_an_execution_arn_is_known_before_it_starts() -> None:
    machine = "arn:aws:states:us-east-1:123456789012:stateMachine:ec2-reboot-first"
    assert execution_arn(machine, "r1-rest") == (
        "arn:aws:states:us-east-1:123456789012:execution:ec2-reboot-first:r1-rest")
