"""What the scheduler costs: CPU per 1,000 targets on a simple playbook.

The fake AWS answers instantly (moto's own cost would drown the figure), so this
measures the executor alone: inspection, a merged StopInstances with a polled wait
for ``stopped``, a merged CreateTags, the journal (a real file, WAL, synchronous
FULL) and the events. ``time.thread_time`` on the scheduler's thread leaves the
pool threads (the fake calls) out.

Run ``pytest tests/executor/test_scheduler_cost.py -s`` to see the figures.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from executor_support import FakeAws, ec2_targets, filter_ids, playbook, step

from remediate.clock import VirtualClock
from remediate.executor.engine import Executor
from remediate.executor.events import EventBus
from remediate.journal import Journal

TARGETS = 1000
# Generous: CI machines are slow and shared. Measured ~1 s on the development box.
BOUND_SECONDS = 30.0


def fake_ec2(clock: VirtualClock) -> FakeAws:
    stopped_at: dict[str, float] = {}
    tags: dict[str, dict[str, str]] = {}

    def state(instance_id: str) -> str:
        at = stopped_at.get(instance_id)
        if at is None:
            return "running"
        return "stopped" if clock.now() >= at else "stopping"

    def handler(service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if operation == "DescribeInstances":
            return {"Reservations": [{"Instances": [
                {"InstanceId": i, "State": {"Name": state(i)},
                 "Placement": {"AvailabilityZone": "us-east-1a"}}
                for i in filter_ids(params)]}]}
        if operation == "CreateTags":  # the run's claims are read back
            for i in params["Resources"]:
                tags.setdefault(i, {}).update({t["Key"]: t["Value"] for t in params["Tags"]})
        if operation == "DescribeTags":
            ids, (key,) = (f["Values"] for f in params["Filters"])
            return {"Tags": [{"ResourceId": i, "Key": key, "Value": tags[i][key]}
                             for i in ids if key in tags.get(i, {})]}
        if operation == "StopInstances":
            for i in params["InstanceIds"]:
                stopped_at.setdefault(i, clock.now() + 90.0)
            return {"StoppingInstances": [{"InstanceId": i} for i in params["InstanceIds"]]}
        return {}

    return FakeAws(handler)


def test_scheduler_cpu_per_thousand_targets(tmp_path: Path) -> None:
    clock = VirtualClock()
    aws = fake_ec2(clock)
    pb = playbook(step("stop", "ec2.stop"), step("tag", "test.tag"), concurrency=TARGETS)
    ids = [f"i-{n:017x}" for n in range(TARGETS)]
    events: list[Any] = []
    bus = EventBus()
    bus.subscribe(events.append)
    executor = Executor(pb, ec2_targets(ids), clients=aws, clock=clock, bus=bus,
                        journal=Journal(tmp_path / "run.journal"), run_id="bench",
                        inspect_actions={"ec2-instance": "test.inspect"})

    cpu, wall = time.thread_time(), time.perf_counter()
    result = executor.run()
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall

    assert result.summary == {"succeeded": TARGETS}
    requests = len(aws.requests)
    print(f"\n{TARGETS} targets: scheduler CPU {cpu:.2f}s, wall {wall:.2f}s, "
          f"{requests} AWS requests, {len(events)} events, simulated {clock.now():.0f}s")
    # Merged: at most one request per 200-id poll chunk whose answer woke its targets.
    assert aws.count("StopInstances") <= 5 and aws.count("CreateTags") <= 5
    assert cpu < BOUND_SECONDS
