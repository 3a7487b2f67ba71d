"""The EC2 action-test harness: a sandbox fleet and a SyncRuntime driving actions on it.

The fixtures that build it live in conftest.py; this module has a unique name so
test modules can import its types whatever other conftest.py pytest loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from remediate.actions import registry
from remediate.actions.contract import Plan, StepContext, Target
from remediate.actions.requests import Call
from remediate.clock import VirtualClock
from remediate.executor.driver import SyncRuntime, run_action
from remediate.language.problems import Problems
from remediate.sandbox import Fleet, FleetSpec, Sandbox

EC2_FLEET = FleetSpec(
    plain=2,
    instance_store=1,
    spot_one_time=1,
    spot_persistent=1,
    stop_protected=1,
    encrypted_bad_key=1,
    marketplace=1,
    hibernation=1,
    reboot_fixable=1,
    reboots_to_fix=2,
    with_eip=1,
    azs=2,
)


class Crash(Exception):
    """The tool died right here (what SIGKILL would do to a real run)."""


class CrashingRuntime(SyncRuntime):
    def __init__(self, clients: Any, clock: VirtualClock, operation: str) -> None:
        super().__init__(clients, clock)
        self.operation = operation

    def call(self, call: Call, region: str) -> Mapping[str, Any]:
        response = super().call(call, region)
        if call.operation == self.operation:
            raise Crash(f"crashed after {call.operation}")
        return response


@dataclass
class Ec2Env:
    sandbox: Sandbox
    fleet: Fleet
    clock: VirtualClock
    runtime: SyncRuntime
    client: Any

    def target(self, kind: str = "plain", index: int = 0) -> Target:
        found = self.fleet.by_kind(kind)[index]
        return Target("ec2-instance", found.instance_id, found.region)

    def run(self, action: str, target: Target, params: Mapping[str, Any] | None = None,
            facts: dict[str, Any] | None = None, run_id: str = "run-1") -> Mapping[str, Any]:
        return run_action(action, target, params or {}, self.runtime, facts=facts, run_id=run_id)

    def plan(self, action: str, facts: dict[str, Any],
             params: Mapping[str, Any] | None = None) -> Plan:
        """What a dry run of ``action`` on the first plain target says, given ``facts``."""
        found = registry.get(action)
        assert found is not None
        checked = found.params.check(dict(params or {}), ("with",), Problems())
        return found.plan(StepContext("run-1", self.target(), facts, self.runtime), checked)

    def facts(self, target: Target) -> dict[str, Any]:
        return dict(self.run("ec2.inspect", target))

    def instance(self, instance_id: str) -> dict[str, Any]:
        reservations = self.client.describe_instances(InstanceIds=[instance_id])["Reservations"]
        found: dict[str, Any] = reservations[0]["Instances"][0]
        return found

    def volume(self, volume_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.client.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
        return found

    def state(self, instance_id: str) -> str:
        return str(self.instance(instance_id)["State"]["Name"])

    def root(self, instance_id: str) -> dict[str, Any] | None:
        """The instance's root mapping: {'DeviceName', 'Ebs': {...}}, or None."""
        instance = self.instance(instance_id)
        for mapping in instance.get("BlockDeviceMappings", []):
            if mapping["DeviceName"] == instance["RootDeviceName"]:
                return dict(mapping)
        return None

    def settle(self, seconds: float = 600.0) -> None:
        """Let simulated time pass so pending state changes land."""
        self.clock.advance(seconds)
        self.client.describe_instances(MaxResults=5)

    def calls(self, operation: str, service: str = "ec2") -> int:
        return self.sandbox.api_call_counts()[(service, operation)]

    def rescue(self, zone: str) -> str:
        """A running rescue instance (a different Windows AMI) in ``zone``."""
        setup = self.fleet.regions[self.sandbox.region]
        instance_id: str = self.client.run_instances(
            ImageId=setup.rescue_windows_ami, InstanceType="m5.large", MinCount=1, MaxCount=1,
            SubnetId=setup.subnets[zone])["Instances"][0]["InstanceId"]
        self.settle()
        return instance_id

    def crashing(self, operation: str) -> SyncRuntime:
        """A runtime that dies (raises Crash) right after AWS has answered ``operation``."""
        return CrashingRuntime(self.runtime.clients, self.clock, operation)

    def denying(self, code: str, *operations: str) -> SyncRuntime:
        """A fresh runtime (no cached answers), with the sandbox answering ``operations``
        with AWS error ``code``."""
        self.sandbox.clear_faults()
        for operation in operations:
            self.sandbox.fail(operation, code, "not for you")
        return SyncRuntime(self.runtime.clients, self.clock)
