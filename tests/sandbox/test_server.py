from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import click
import pytest
from botocore.exceptions import ClientError
from botocore_support import NO_RETRIES

from remediate.cli.sandbox import THROTTLE_MODELS, throttle_policy
from remediate.sandbox import Fleet, FleetSpec, Neighbour, Sandbox, ThrottlePolicy, serve
from remediate.sandbox.server import free_port
from remediate.sandbox.state import LostReplies
from remediate.sandbox.throttling import MODELS

ROOT = Path(__file__).resolve().parents[2]
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@contextmanager
def serving(spec: FleetSpec, **kwargs: Any) -> Iterator[tuple[dict[str, Any], io.StringIO]]:
    """``serve`` in a thread until the block ends: (endpoint and fleet, what it printed)."""
    stop = threading.Event()
    ready: dict[str, Any] = {}
    started = threading.Event()
    out = io.StringIO()

    def on_ready(endpoint: str, fleet: Fleet, sandbox: Sandbox) -> None:
        ready.update(endpoint=endpoint, fleet=fleet)
        started.set()

    thread = threading.Thread(
        target=serve, args=(free_port(), spec),
        kwargs={"clock_factor": 600.0, "stop": stop, "on_ready": on_ready, "out": out,
                **kwargs},
        daemon=True,
    )
    thread.start()
    try:
        assert started.wait(60)
        yield ready, out
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()


def test_serve_in_a_thread_answers_boto3() -> None:
    with serving(FleetSpec(plain=3, azs=1)) as (ready, out):
        assert ready["endpoint"].startswith("http://127.0.0.1:")
        announced = json.loads(out.getvalue().splitlines()[0])
        assert len(announced["fleet"]["targets"]) == 3
        assert announced["lost_replies"] is None
        ec2 = boto3.client(
            "ec2", region_name="us-east-1", endpoint_url=ready["endpoint"], **CREDENTIALS
        )
        ids = ready["fleet"].instance_ids()
        statuses = ec2.describe_instance_status(InstanceIds=ids)["InstanceStatuses"]
        assert {s["InstanceStatus"]["Status"] for s in statuses} == {"impaired"}
        stopping = ec2.stop_instances(InstanceIds=ids[:1])["StoppingInstances"][0]
        assert stopping["CurrentState"]["Name"] == "stopping"


def test_serve_with_lost_replies_loses_them_once_the_fleet_is_built() -> None:
    # At real speed, so the stop it lost the reply of is still under way when read.
    with serving(FleetSpec(plain=2, azs=1), clock_factor=1.0,
                 lost_replies=LostReplies(1.0, seed=7)) as (ready, out):
        announced = json.loads(out.getvalue().splitlines()[0])
        assert announced["lost_replies"] == {"probability": 1.0, "seed": 7}
        ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=ready["endpoint"],
                           config=NO_RETRIES, **CREDENTIALS)
        first, second = ready["fleet"].instance_ids()
        # Built whole (the fault starts after), and reads are never lost.
        found = ec2.describe_instances(InstanceIds=[first, second])["Reservations"]
        assert sorted(i["InstanceId"] for r in found for i in r["Instances"]) == sorted(
            [first, second])

        with pytest.raises(ClientError) as excinfo:
            ec2.stop_instances(InstanceIds=[first])

        assert excinfo.value.response["Error"]["Code"] == "InternalError"
        assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        # It took effect all the same.
        found = ec2.describe_instances(InstanceIds=[first])["Reservations"][0]["Instances"]
        assert found[0]["State"]["Name"] == "stopping"


def test_serve_with_a_throttle_model_throttles_like_aws_once_the_fleet_is_built() -> None:
    policy = ThrottlePolicy.aws_defaults(model="shared-category", neighbour=Neighbour(0.3))
    # Nearly frozen, so the bucket does not refill while the calls are made.
    with serving(FleetSpec(plain=2, azs=1), clock_factor=0.001, throttle=policy) as (ready, out):
        announced = json.loads(out.getvalue().splitlines()[0])
        assert announced["throttle"] == {"model": "shared-category", "neighbour": 0.3}
        ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=ready["endpoint"],
                           config=NO_RETRIES, **CREDENTIALS)
        instance = ready["fleet"].instance_ids()[0]
        for _ in range(50):
            ec2.delete_tags(Resources=[instance], Tags=[{"Key": "nothing-here"}])

        # One bucket for the mutating category: DeleteTags emptied RebootInstances' too.
        with pytest.raises(ClientError) as excinfo:
            ec2.reboot_instances(InstanceIds=[instance])

        assert excinfo.value.response["Error"]["Code"] == "RequestLimitExceeded"


def test_the_cli_names_the_sandboxs_throttle_models() -> None:
    assert THROTTLE_MODELS == MODELS
    assert throttle_policy("off", 0.0) is None
    assert throttle_policy("documented", 0.3) == ThrottlePolicy.aws_defaults(
        neighbour=Neighbour(0.3))
    with pytest.raises(click.BadParameter, match="needs --throttle documented or "
                                                 "shared-category"):
        throttle_policy("off", 0.3)


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
