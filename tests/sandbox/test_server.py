from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest

from remediate.sandbox import Fleet, FleetSpec, Sandbox, serve
from remediate.sandbox.server import free_port

ROOT = Path(__file__).resolve().parents[2]
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def test_serve_in_a_thread_answers_boto3() -> None:
    stop = threading.Event()
    ready: dict[str, Any] = {}
    started = threading.Event()
    out = io.StringIO()

    def on_ready(endpoint: str, fleet: Fleet, sandbox: Sandbox) -> None:
        ready.update(endpoint=endpoint, fleet=fleet)
        started.set()

    port = free_port()
    thread = threading.Thread(
        target=serve,
        args=(port, FleetSpec(plain=3, azs=1)),
        kwargs={"clock_factor": 600.0, "stop": stop, "on_ready": on_ready, "out": out},
        daemon=True,
    )
    thread.start()
    try:
        assert started.wait(60)
        assert ready["endpoint"] == f"http://127.0.0.1:{port}"
        announced = json.loads(out.getvalue().splitlines()[0])
        assert len(announced["fleet"]["targets"]) == 3
        ec2 = boto3.client(
            "ec2", region_name="us-east-1", endpoint_url=ready["endpoint"], **CREDENTIALS
        )
        ids = ready["fleet"].instance_ids()
        statuses = ec2.describe_instance_status(InstanceIds=ids)["InstanceStatuses"]
        assert {s["InstanceStatus"]["Status"] for s in statuses} == {"impaired"}
        stopping = ec2.stop_instances(InstanceIds=ids[:1])["StoppingInstances"][0]
        assert stopping["CurrentState"]["Name"] == "stopping"
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()


@pytest.mark.slow
def test_module_entry_point_serves_until_sigterm() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "remediate.sandbox", "--port", str(port), "--fleet", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        announced = json.loads(process.stdout.readline())
        assert announced["endpoint"] == f"http://127.0.0.1:{port}"
        ec2 = boto3.client(
            "ec2", region_name="us-east-1", endpoint_url=announced["endpoint"], **CREDENTIALS
        )
        targets = [t["instance_id"] for t in announced["fleet"]["targets"]]
        found = ec2.describe_instances(InstanceIds=targets)["Reservations"]
        assert sorted(i["InstanceId"] for r in found for i in r["Instances"]) == sorted(targets)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
