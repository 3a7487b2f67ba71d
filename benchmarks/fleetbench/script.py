"""The baselines a user would otherwise reach for, run against the same sandbox.

- :func:`tuned_script`: what an SRE writes in a night with boto3: one shared client
  per Region in the SDK's ``standard`` retry mode (10 attempts as boto3's guide
  shows it, exponential backoff, a retry quota per client), N worker threads each
  taking the next target and doing its whole volume swap, waiting with boto3's own
  waiters (an instance or volume polled every 15 s, a command every 5 s). Rescue
  instances are launched up front, enough slots in every AZ for all N workers. The
  backup snapshot is not waited for (it is point-in-time when CreateSnapshot
  returns), which favours the script.
- :func:`ssm_automation`: a model of AWS's own route, SSM Automation's
  ``AWSSupport-StartEC2RescueWorkflow``: at most 100 executions at once per account
  and Region (:data:`SSM_AUTOMATION_CONCURRENCY`), each launching a helper
  instance for its one target in the target's subnet, doing the swap through it, and
  terminating it. Each execution has clients of its own (so its own standard-mode
  retry quota: executions are independent, and Automation retries throttled steps,
  https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-throttling-retry.html).
  Left out, in the route's favour: the CloudFormation stack and IAM role each
  execution creates, the backup AMI, and Automation's own step overhead.

Both are plain threads over boto3 (standard retry mode, 10 attempts:
:data:`STANDARD_RETRIES`), paced only by the sandbox's buckets (AWS's
``RequestLimitExceeded``) and botocore's retries, on a
:class:`~fleetbench.threadclock.ThreadedVirtualClock`. A target whose calls fail
(retries exhausted, a waiter gives up) is left where it is, as such a script does:
the sandbox's end state says what was fixed.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from botocore.config import Config

from fleetbench.threadclock import join, take_part
from remediate.clock import Clock
from remediate.sandbox import Fleet, Sandbox
from remediate.sandbox.fleet import Target as FleetTarget

STANDARD_RETRIES: Final = {"mode": "standard", "max_attempts": 10}
"""The SDK's standard retry mode as boto3's retry guide shows it configured
(https://boto3.amazonaws.com/v1/documentation/api/latest/guide/retries.html:
``Config(retries={'max_attempts': 10, 'mode': 'standard'})``): its default of 3
attempts gives up on most targets once a bucket runs dry."""
SSM_AUTOMATION_CONCURRENCY: Final = 100
"""AWS's default: "By default, Automation lets you run up to 100 concurrent automations
at a time" (https://docs.aws.amazon.com/systems-manager/latest/userguide/adaptive-concurrency.html;
adaptive concurrency, opt-in, allows up to 500; the quota is per account and Region,
https://docs.aws.amazon.com/general/latest/gr/ssm.html)."""
SLOTS: Final = tuple(f"xvd{letter}" for letter in "fghijklmnop")
"""Data-disk device names a Windows rescue instance takes (11)."""
RESCUE_TYPE: Final = "m5.large"
REPAIR: Final = (
    "$disk = Get-Disk | Where-Object {{ $_.SerialNumber -replace '_.*','' -eq '{volume}' }}\n"
    "Set-Disk -Number $disk.Number -IsOffline $false\n"
    "$drive = (Get-Partition -DiskNumber $disk.Number | Where-Object DriveLetter)"
    ".DriveLetter\n"
    "Get-ChildItem -Path \"${{drive}}:\\Windows\\System32\\drivers\\CrowdStrike\\\" "
    "-Include C-00000291*.sys -Recurse | ForEach-Object {{ $_.Delete() }}\n"
    "Set-Disk -Number $disk.Number -IsOffline $true"
)
"""AWS's offline fix (Get-ChildItem ... C-00000291*.sys ... Delete()), on the disk
whose serial is the volume id (Nitro)."""


@dataclass
class _Slots:
    """Free (rescue instance, device) slots per AZ. A slot whose target failed is not
    given back (its volume may still be attached there); when an AZ runs out, the
    taker launches one more rescue instance there."""

    launch: Callable[[str], list[str]]
    """AZ -> ids of a new rescue instance there (running, status ok)."""
    free: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, az: str, instance_ids: list[str]) -> None:
        with self.lock:
            self.free.setdefault(az, []).extend(
                (i, device) for i in instance_ids for device in SLOTS)

    def take(self, az: str) -> tuple[str, str]:
        while True:
            with self.lock:
                if self.free.get(az):
                    return self.free[az].pop()
            self.add(az, self.launch(az))

    def give(self, az: str, slot: tuple[str, str]) -> None:
        with self.lock:
            self.free[az].append(slot)


@dataclass
class ScriptResult:
    workers: int
    failures: dict[str, int]
    """Why the script gave up on targets (an AWS error code, or an exception class)
    -> how many."""


class _Clients:
    """One boto3 client per service and Region, shared by the script's threads (as a
    script's module-level client is; standard mode's retry quota is per client)."""

    def __init__(self, sandbox: Sandbox, workers: int) -> None:
        self.sandbox = sandbox
        self.config = Config(retries=dict(STANDARD_RETRIES),
                             max_pool_connections=max(10, workers))
        self.lock = threading.Lock()

    def __call__(self, service: str, region: str) -> Any:
        with self.lock:  # the sandbox's client cache is not thread-safe
            return self.sandbox.client(service, region, config=self.config)


def _waiter(client: Any, name: str, **kwargs: Any) -> None:
    client.get_waiter(name).wait(**kwargs)


def _launch(ec2: Any, fleet: Fleet, region: str, az: str, count: int) -> list[str]:
    setup = fleet.regions[region]
    reply = ec2.run_instances(ImageId=setup.rescue_windows_ami, InstanceType=RESCUE_TYPE,
                              MinCount=count, MaxCount=count, SubnetId=setup.subnets[az],
                              TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                  {"Key": "remediate:role", "Value": "rescue"}]}])
    ids = [i["InstanceId"] for i in reply["Instances"]]
    _waiter(ec2, "instance_status_ok", InstanceIds=ids)
    return ids


def _swap(ec2: Any, ssm: Any, target: FleetTarget, helper: str, device: str) -> None:
    """One target's volume swap through ``helper``'s ``device`` slot."""
    volume = target.root_volume_id
    ec2.create_snapshot(VolumeId=volume, Description=f"backup of {target.instance_id}")
    ec2.stop_instances(InstanceIds=[target.instance_id], Force=True)
    _waiter(ec2, "instance_stopped", InstanceIds=[target.instance_id])
    ec2.detach_volume(VolumeId=volume)
    _waiter(ec2, "volume_available", VolumeIds=[volume])
    ec2.attach_volume(VolumeId=volume, InstanceId=helper, Device=device)
    _waiter(ec2, "volume_in_use", VolumeIds=[volume])
    command = ssm.send_command(InstanceIds=[helper], DocumentName="AWS-RunPowerShellScript",
                               Parameters={"commands": [REPAIR.format(volume=volume)]})
    _waiter(ssm, "command_executed", CommandId=command["Command"]["CommandId"],
            InstanceId=helper)
    ec2.detach_volume(VolumeId=volume)
    _waiter(ec2, "volume_available", VolumeIds=[volume])
    ec2.attach_volume(VolumeId=volume, InstanceId=target.instance_id,
                      Device=target.root_device_name)
    _waiter(ec2, "volume_in_use", VolumeIds=[volume])
    ec2.start_instances(InstanceIds=[target.instance_id])
    _waiter(ec2, "instance_status_ok", InstanceIds=[target.instance_id])


def _reason(error: Exception) -> str:
    """An AWS error code (``RequestLimitExceeded``), else the exception's class."""
    code = getattr(error, "response", {}).get("Error", {}).get("Code")
    return str(code) if code else type(error).__name__


Work = Callable[[FleetTarget], None]


def _run_workers(clock: Clock, targets: list[FleetTarget], workers: int, work: Work
                 ) -> dict[str, int]:
    """``workers`` threads on ``clock`` take targets in order until none is left."""
    queue: Iterator[FleetTarget] = iter(targets)
    lock = threading.Lock()
    failures: dict[str, int] = {}

    def worker() -> None:
        with take_part(clock):
            while True:
                with lock:
                    target = next(queue, None)
                if target is None:
                    return
                try:
                    work(target)
                except Exception as error:  # the script logs it and moves on
                    with lock:
                        name = _reason(error)
                        failures[name] = failures.get(name, 0) + 1

    threads = [threading.Thread(target=worker, name=f"script-{i}") for i in range(workers)]
    join(clock, len(threads))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def tuned_script(sandbox: Sandbox, fleet: Fleet, clock: Clock, workers: int) -> ScriptResult:
    """The N-worker script (module docstring) over every target of ``fleet``."""
    region_of = {t.availability_zone: t.region for t in fleet.targets}
    rescues: list[tuple[str, str]] = []
    client = _Clients(sandbox, workers)

    def launch(az: str, count: int = 1) -> list[str]:
        ec2 = client("ec2", region_of[az])
        ids = _launch(ec2, fleet, region_of[az], az, count)
        rescues.extend((region_of[az], i) for i in ids)
        return ids

    slots = _Slots(launch)
    join(clock)
    with take_part(clock):
        for az in sorted(region_of):
            slots.add(az, launch(az, math.ceil(workers / len(SLOTS))))

    def work(target: FleetTarget) -> None:
        ec2, ssm = client("ec2", target.region), client("ssm", target.region)
        helper, device = slots.take(target.availability_zone)
        _swap(ec2, ssm, target, helper, device)
        slots.give(target.availability_zone, (helper, device))

    failures = _run_workers(clock, list(fleet.targets), workers, work)
    join(clock)
    with take_part(clock):
        for region in sorted({region for region, _ in rescues}):
            client("ec2", region).terminate_instances(
                InstanceIds=[i for r, i in rescues if r == region])
    return ScriptResult(workers, failures)


def ssm_automation(sandbox: Sandbox, fleet: Fleet, clock: Clock,
                   concurrency: int = SSM_AUTOMATION_CONCURRENCY) -> ScriptResult:
    """The SSM Automation model (module docstring): one helper instance per target."""

    mine = threading.local()
    every: list[_Clients] = []  # alive to the end: the sandbox caches clients by id(config)

    def work(target: FleetTarget) -> None:
        if not hasattr(mine, "client"):
            mine.client = _Clients(sandbox, 1)
            every.append(mine.client)
        ec2, ssm = mine.client("ec2", target.region), mine.client("ssm", target.region)
        helper = _launch(ec2, fleet, target.region, target.availability_zone, 1)[0]
        try:
            _swap(ec2, ssm, target, helper, SLOTS[0])
        finally:
            ec2.terminate_instances(InstanceIds=[helper])

    return ScriptResult(concurrency,
                        _run_workers(clock, list(fleet.targets), concurrency, work))
