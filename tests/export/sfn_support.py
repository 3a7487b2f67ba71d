"""Running exported playbooks on moto against the sandbox, and reading the end state."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore_support import NO_RETRIES

from remediate.actions.contract import Target
from remediate.export import compile_playbook, execution_input, execution_name
from remediate.export.moto_engine import MotoStepFunctions
from remediate.language.loader import bind_params, load_file, load_text
from remediate.language.model import Playbook
from remediate.sandbox import Sandbox

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/remediate-sfn"
PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def builtin(name: str, **params: str) -> tuple[Playbook, dict[str, Any]]:
    loaded = load_file(PLAYBOOKS / name)
    assert loaded.playbook is not None, loaded.problems
    bound, errors = bind_params(loaded.playbook, params)
    assert not errors, errors
    return loaded.playbook, bound


def from_text(text: str, **params: str) -> tuple[Playbook, dict[str, Any]]:
    """A playbook written in a test; its scripts resolve in playbooks/."""
    loaded = load_text(text, str(PLAYBOOKS / "under-test.yaml"), str(PLAYBOOKS))
    assert loaded.playbook is not None, loaded.problems
    bound, errors = bind_params(loaded.playbook, params)
    assert not errors, errors
    return loaded.playbook, bound


def one_step(kind: str, step: str) -> tuple[Playbook, dict[str, Any]]:
    """A playbook of one step (``step``: its YAML mapping, one line) on targets of ``kind``."""
    return from_text(f"""
version: 1
name: one-step
targets: {{kind: {kind}, tags: {{incident: crowdstrike-2024-07-19}}}}
steps: [{step}]
""")


@dataclass(frozen=True)
class Outcome:
    arn: str
    status: str
    error: str | None
    cause: str | None
    output: Any


def _run(sb: Sandbox, engine: MotoStepFunctions, name: str, definition: Mapping[str, Any],
         document: Mapping[str, Any], run_id: str) -> Outcome:
    sfn = sb.client("stepfunctions", REGION, config=NO_RETRIES)
    machine = sfn.create_state_machine(name=name, definition=json.dumps(definition),
                                       roleArn=ROLE)["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine, name=execution_name(run_id),
                              input=json.dumps(document))["executionArn"]
    assert engine.join(timeout=900), "the execution did not end"
    found = sfn.describe_execution(executionArn=arn)
    return Outcome(arn, found["status"], found.get("error"), found.get("cause"),
                   json.loads(found["output"]) if "output" in found else None)


def run_playbook(sb: Sandbox, engine: MotoStepFunctions, playbook: Playbook,
                 params: Mapping[str, Any], targets: Sequence[Target], run_id: str = "sfn-1",
                 **options: Any) -> Outcome:
    definition = compile_playbook(playbook, params, **options)
    return _run(sb, engine, playbook.name, definition,
                execution_input(playbook, targets, run_id), run_id)


def run_one_target(sb: Sandbox, engine: MotoStepFunctions, playbook: Playbook,
                   params: Mapping[str, Any], target: Target, run_id: str = "sfn-1",
                   **options: Any) -> Outcome:
    """The Map's iteration alone, as a state machine: its outcome is the target's
    (moto hides a Distributed Map's child executions)."""
    processor = dict(compile_playbook(playbook, params, **options)["States"]["targets"][
        "ItemProcessor"])
    processor.pop("ProcessorConfig")
    item = {"id": target.id, "region": target.region, "account": target.account}
    return _run(sb, engine, f"{playbook.name}-iteration", processor,
                {"target": item, "run": {"id": run_id}}, run_id)


def item_counts(sb: Sandbox, outcome: Outcome) -> Counter[str]:
    """Targets per outcome over the execution's Map Runs (one per batch)."""
    sfn = sb.client("stepfunctions", REGION, config=NO_RETRIES)
    counts: Counter[str] = Counter()
    for run in sfn.list_map_runs(executionArn=outcome.arn)["mapRuns"]:
        found = sfn.describe_map_run(mapRunArn=run["mapRunArn"])["itemCounts"]
        counts.update({k: v for k, v in found.items() if k in ("succeeded", "failed") and v})
    return counts


def ec2_targets(fleet_targets: Sequence[Any]) -> list[Target]:
    return [Target("ec2-instance", t.instance_id, t.region) for t in fleet_targets]


@dataclass(frozen=True)
class EndState:
    state: str
    root_in_place: bool
    channel_file: bool
    status_ok: bool


def end_state(sb: Sandbox, target: Any) -> EndState:
    ec2 = sb.client("ec2", target.region, config=NO_RETRIES)
    instance = ec2.describe_instances(InstanceIds=[target.instance_id])[
        "Reservations"][0]["Instances"][0]
    mapping = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]}
    status = ec2.describe_instance_status(InstanceIds=[target.instance_id])["InstanceStatuses"]
    return EndState(instance["State"]["Name"],
                    mapping.get(target.root_device_name) == target.root_volume_id,
                    sb.channel_file_present(target.root_volume_id),
                    bool(status) and status[0]["InstanceStatus"]["Status"] == "ok")


FIXED = EndState("running", True, False, True)
UNTOUCHED_BROKEN = EndState("running", True, True, False)


def rescue_instances(sb: Sandbox) -> list[str]:
    """Rescue instances not terminated."""
    found = sb.client("ec2", REGION, config=NO_RETRIES).describe_instances(Filters=[
        {"Name": "tag:remediate:role", "Values": ["rescue"]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])
    return [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]]


def backups(sb: Sandbox, target: Any) -> list[str]:
    found = sb.client("ec2", REGION, config=NO_RETRIES).describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": [target.root_volume_id]},
                                    {"Name": "tag:remediate:purpose", "Values": ["backup"]}])
    return [s["SnapshotId"] for s in found["Snapshots"]]
