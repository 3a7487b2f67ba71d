"""Measure exports: each built-in playbook's definition size, and a moto-executed run.

``python -m remediate.export.benchmark --targets 200`` prints the size of every
built-in playbook's state machine (or why it does not export), then runs the
offline repair and reboot-first playbooks, exported, on a sandbox fleet of that
many targets with moto executing them on a VirtualClock, and reports the wall
time and the end state. Numbers are for comparison between versions, not
promises: moto interprets ASL in Python threads, far slower than AWS.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from remediate.actions.contract import Target
from remediate.clock import VirtualClock
from remediate.export import (
    NotExportable,
    compile_playbook,
    definition_size,
    execution_input,
    execution_name,
)
from remediate.export.moto_engine import MotoStepFunctions
from remediate.language.loader import bind_params, load_file
from remediate.language.model import Playbook
from remediate.sandbox import Durations, FleetSpec, Sandbox

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
# Placeholder values for required parameters, to size the definitions.
SAMPLE_PARAMS = {"snapshot_id": "snap-0123456789abcdef0"}


def _load(path: Path) -> Playbook:
    loaded = load_file(path)
    if loaded.playbook is None:
        raise SystemExit(f"{path}: does not load: {loaded.problems}")
    return loaded.playbook


def _params(playbook: Playbook, **given: str) -> dict[str, object]:
    wanted = {k: v for k, v in {**SAMPLE_PARAMS, **given}.items() if k in playbook.parameters}
    values, errors = bind_params(playbook, wanted)
    if errors:
        raise SystemExit("; ".join(errors))
    return values


def sizes() -> None:
    for path in sorted(PLAYBOOKS.glob("*.yaml")):
        playbook = _load(path)
        try:
            size = definition_size(compile_playbook(playbook, _params(playbook)))
        except NotExportable as exc:
            print(f"{path.name}: does not export: {exc.reason}")
            continue
        print(f"{path.name}: {size}")


def run(name: str, spec: FleetSpec) -> None:
    playbook = _load(PLAYBOOKS / name)
    clock = VirtualClock()
    with MotoStepFunctions(clock) as engine, Sandbox(clock=clock, durations=Durations()) as sb:
        fleet = sb.build_fleet(spec)
        params = _params(playbook)  # the rescue image: resolve:ssm:, as the sandbox has it
        sfn = sb.client("stepfunctions")
        machine = sfn.create_state_machine(
            name=playbook.name, roleArn="arn:aws:iam::123456789012:role/remediate",
            definition=json.dumps(compile_playbook(playbook, params)))["stateMachineArn"]
        targets = [Target("ec2-instance", t.instance_id, t.region) for t in fleet.targets]
        started = time.monotonic()
        arn = sfn.start_execution(
            stateMachineArn=machine, name=execution_name("bench"),
            input=json.dumps(execution_input(playbook, targets, "bench")))["executionArn"]
        finished = engine.join(timeout=3 * 3600)
        wall = time.monotonic() - started
        status = sfn.describe_execution(executionArn=arn)["status"]
        ec2 = sb.client("ec2")
        healthy = Counter(
            bool(s["InstanceStatus"]["Status"] == "ok")
            for t in fleet.targets
            for s in ec2.describe_instance_status(InstanceIds=[t.instance_id])["InstanceStatuses"])
        calls = sum(sb.api_call_counts().values())
    print(f"{name} over {spec.targets} targets: {status if finished else 'still running'} in "
          f"{wall:.1f} s wall time ({clock.now():,.0f} s simulated), {calls:,} API calls, "
          f"{healthy[True]} targets healthy at the end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--skip-runs", action="store_true")
    args = parser.parse_args()
    sizes()
    if not args.skip_runs:
        run("ec2-offline-repair.yaml", FleetSpec(plain=args.targets, azs=2))
        run("ec2-reboot-first.yaml", FleetSpec(plain=0, reboot_fixable=args.targets, azs=2))


if __name__ == "__main__":
    main()
