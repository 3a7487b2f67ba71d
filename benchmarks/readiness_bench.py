"""How long `remediate readiness` takes over a large fleet (issue 18).

    python benchmarks/readiness_bench.py                  # 1,000 and 10,000 instances
    python benchmarks/readiness_bench.py --sizes 1000

For each size: a sandbox fleet of that many broken Windows targets in one account and
Region (3 AZs), each root volume snapshotted, an operator role holding the offline
repair's policy; then `remediate readiness playbooks/ec2-offline-repair.yaml` as the
command runs it (discovery, every check), timed on this machine's wall clock, with
the API calls it made. The sandbox answers in-process (moto), so the figure is
remediate's and moto's CPU, not AWS's latency: on AWS each of the calls is a round
trip (tens of milliseconds), paged and sent a few Regions at a time.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from remediate.cli.launch import Environment
from remediate.cli.options import TargetArgs
from remediate.cli.readiness import ReadinessRequest, scorecard
from remediate.clock import VirtualClock
from remediate.language.loader import load_file
from remediate.permissions import policy_document
from remediate.sandbox import FleetSpec, Sandbox

PLAYBOOK = str(Path(__file__).resolve().parents[1] / "playbooks" / "ec2-offline-repair.yaml")


def _operator(sandbox: Sandbox) -> str:
    loaded = load_file(PLAYBOOK).playbook
    assert loaded is not None
    iam = sandbox.client("iam")
    arn = str(iam.create_role(RoleName="remediate", AssumeRolePolicyDocument="{}")["Role"][
        "Arn"])
    iam.put_role_policy(RoleName="remediate", PolicyName="remediate",
                        PolicyDocument=json.dumps(policy_document(loaded)))
    return arn


def measure(size: int) -> dict[str, object]:
    clock = VirtualClock()
    with Sandbox(clock=clock) as sandbox:
        fleet = sandbox.build_fleet(FleetSpec(plain=size, azs=3))
        ec2 = sandbox.client("ec2")
        for target in fleet.targets:
            ec2.create_snapshot(VolumeId=target.root_volume_id)
        clock.advance(3600)  # every snapshot completed, an hour old
        operator = _operator(sandbox)
        sandbox.reset_api_calls()
        env = Environment(clock=clock, session=sandbox.boto3_session(), interactive=False)
        started = time.perf_counter()
        card = scorecard(ReadinessRequest(PLAYBOOK, TargetArgs(), operator_arn=operator), env)
        seconds = time.perf_counter() - started
        calls = Counter(call.operation for call in sandbox.api_calls)
    return {"instances": size, "seconds": round(seconds, 1), "ready": card.ready,
            "findings": len(card.findings), "api_calls": sum(calls.values()),
            "calls": dict(sorted(calls.items()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000",
                        help="fleet sizes, comma-separated (default 1000,10000)")
    args = parser.parse_args()
    for size in (int(s) for s in args.sizes.split(",")):
        print(json.dumps(measure(size)), flush=True)


if __name__ == "__main__":
    main()
