from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from ec2_harness import Ec2Env
from remediate.actions.contract import Plan, PlannedCall, Target
from remediate.actions.ec2_power import describe_checks
from remediate.actions.registry import get
from remediate.actions.requests import Call, StepFailed, WaitFailed
from remediate.executor.driver import SyncRuntime, run_action

# --- ec2.stop ---


def test_stop_stops_a_running_instance_and_is_idempotent(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    assert ec2_env.run("ec2.stop", target) == {"previous_state": "running"}
    assert ec2_env.state(target.id) == "stopped"
    assert ec2_env.calls("StopInstances") == 1
    assert ec2_env.run("ec2.stop", target) == {"previous_state": "stopped"}
    assert ec2_env.calls("StopInstances") == 1


def test_stop_finishes_a_stop_already_in_flight(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    ec2_env.client.stop_instances(InstanceIds=[target.id])
    assert ec2_env.state(target.id) == "stopping"
    assert ec2_env.run("ec2.stop", target) == {"previous_state": "stopping"}
    assert ec2_env.state(target.id) == "stopped"
    assert ec2_env.calls("StopInstances") == 1


def test_stop_waits_for_a_pending_instance_to_run_first(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    ec2_env.run("ec2.stop", target)
    ec2_env.client.start_instances(InstanceIds=[target.id])
    assert ec2_env.state(target.id) == "pending"
    assert ec2_env.run("ec2.stop", target) == {"previous_state": "pending"}
    assert ec2_env.state(target.id) == "stopped"


def test_stop_forces_a_stop_that_hangs(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    started = ec2_env.clock.now()
    ec2_env.run("ec2.stop", target, {"force_after": "30s"})
    assert ec2_env.state(target.id) == "stopped"
    assert ec2_env.calls("StopInstances") == 2  # the second one with Force
    assert ec2_env.clock.now() - started >= 30


def test_force_after_longer_than_the_timeout_never_forces(ec2_env: Ec2Env) -> None:
    ec2_env.run("ec2.stop", ec2_env.target(), {"force_after": "1h", "timeout": "15m"})
    assert ec2_env.calls("StopInstances") == 1


def test_stop_protection_fails_the_step_with_awss_reason(ec2_env: Ec2Env) -> None:
    target = ec2_env.target("stop_protected")
    with pytest.raises(StepFailed) as failed:
        ec2_env.run("ec2.stop", target)
    assert str(failed.value).startswith(f"StopInstances for {target.id} failed: "
                                        "OperationNotPermitted: ")
    assert ec2_env.state(target.id) == "running"


def test_a_one_time_spot_instance_cannot_be_stopped(ec2_env: Ec2Env) -> None:
    target = ec2_env.target("spot_one_time")
    with pytest.raises(StepFailed) as failed:
        ec2_env.run("ec2.stop", target)
    assert str(failed.value).startswith(f"StopInstances for {target.id} failed: "
                                        "UnsupportedOperation: ")


def test_stop_of_a_terminated_instance_fails(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    ec2_env.client.terminate_instances(InstanceIds=[target.id])
    ec2_env.settle()
    with pytest.raises(StepFailed) as failed:
        ec2_env.run("ec2.stop", target)
    assert str(failed.value) == f"{target.id} is terminated; it cannot be stopped"


def test_stop_picks_its_entry_out_of_a_merged_call(ec2_env: Ec2Env) -> None:
    """As the executor merges StopInstances across targets, so does this runtime."""
    first, second = ec2_env.target(index=0), ec2_env.target(index=1)
    merging = _MergingRuntime(ec2_env.runtime, extra=second.id)
    assert run_action("ec2.stop", first, {}, merging) == {"previous_state": "running"}
    assert ec2_env.calls("StopInstances") == 1
    ec2_env.settle()
    assert (ec2_env.state(first.id), ec2_env.state(second.id)) == ("stopped", "stopped")


class _MergingRuntime(SyncRuntime):
    def __init__(self, base: SyncRuntime, extra: str) -> None:
        super().__init__(base.clients, base.clock)
        self.extra = extra

    def call(self, call: Call, region: str) -> Mapping[str, Any]:
        if call.batch_key:
            ids = [self.extra, *call.params[call.batch_key]]  # another target's id first
            call = Call(call.service, call.operation, {**call.params, call.batch_key: ids},
                        call.batch_key)
        return super().call(call, region)


def test_stop_plan(ec2_env: Ec2Env) -> None:
    assert ec2_env.plan("ec2.stop", {"state": "stopped"}) == Plan(skip="already stopped")
    target = ec2_env.target()
    assert ec2_env.plan("ec2.stop", {"state": "running"}) == Plan(
        calls=(PlannedCall("ec2:StopInstances", True, f"stop {target.id}"),))


# --- ec2.start ---


def test_start_starts_a_stopped_instance_and_is_idempotent(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    ec2_env.run("ec2.stop", target)
    assert ec2_env.run("ec2.start", target) == {"previous_state": "stopped"}
    assert ec2_env.state(target.id) == "running"
    assert ec2_env.run("ec2.start", target) == {"previous_state": "running"}
    assert ec2_env.calls("StartInstances") == 1


def test_start_waits_out_a_stop_in_flight(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    ec2_env.client.stop_instances(InstanceIds=[target.id])
    assert ec2_env.run("ec2.start", target) == {"previous_state": "stopping"}
    assert ec2_env.state(target.id) == "running"


def test_start_fails_when_the_kms_key_stops_the_instance_again(ec2_env: Ec2Env) -> None:
    target = ec2_env.target("encrypted_bad_key")
    ec2_env.run("ec2.stop", target)
    with pytest.raises(WaitFailed) as failed:
        ec2_env.run("ec2.start", target)
    assert str(failed.value) == (
        f"{target.id} running: the instance stopped again: Client.InvalidKMSKey.InvalidState: "
        "The KMS key provided is in an incorrect state")


def _exhaust_the_az_of(ec2_env: Ec2Env, instance_id: str) -> None:
    """Nothing of the instance's type is left in its AZ (the others running hold it all)."""
    instance = ec2_env.instance(instance_id)
    ec2_env.sandbox.set_capacity(instance["InstanceType"],
                                 instance["Placement"]["AvailabilityZone"], 0)


def test_start_without_capacity_retries_then_says_what_to_do(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    ec2_env.run("ec2.stop", target)
    _exhaust_the_az_of(ec2_env, target.id)
    began = ec2_env.clock.now()
    with pytest.raises(StepFailed) as failed:
        ec2_env.run("ec2.start", target)
    zone = ec2_env.instance(target.id)["Placement"]["AvailabilityZone"]
    assert str(failed.value) == (
        f"no capacity to start {target.id}: 4 attempts over 3m30s were refused "
        "(InsufficientInstanceCapacity: We currently do not have sufficient m5.large "
        f"capacity in the Availability Zone you requested ({zone}). Our system will be "
        "working on provisioning additional capacity. You can currently get m5.large "
        "capacity by not specifying an Availability Zone in your request or choosing other "
        "Availability Zones.). It is stopped, with its root volume attached: start it again "
        f"in a few minutes (aws ec2 start-instances --instance-ids {target.id}, or run again "
        "with --retry-failed), or change its instance type while it is stopped; it cannot "
        "move to another Availability Zone, its volumes are in this one.")
    assert ec2_env.calls("StartInstances") == 4
    assert ec2_env.clock.now() - began >= 210
    assert ec2_env.state(target.id) == "stopped"
    assert ec2_env.root(target.id) is not None


def test_start_succeeds_when_capacity_comes_back_within_its_budget(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    ec2_env.run("ec2.stop", target)
    _exhaust_the_az_of(ec2_env, target.id)
    instance = ec2_env.instance(target.id)
    ec2_env.sandbox.set_capacity(instance["InstanceType"],
                                 instance["Placement"]["AvailabilityZone"], None,
                                 at=ec2_env.clock.now() + 60)
    assert ec2_env.run("ec2.start", target) == {"previous_state": "stopped"}
    assert ec2_env.state(target.id) == "running"
    assert ec2_env.calls("StartInstances") == 3  # refused, refused (at +30s), started


def test_start_plan(ec2_env: Ec2Env) -> None:
    assert ec2_env.plan("ec2.start", {"state": "running"}) == Plan(skip="already running")
    assert ec2_env.plan("ec2.start", {"state": "stopped"}).calls[0].api == "ec2:StartInstances"


# --- ec2.reboot ---


def test_reboot_until_status_checks_pass(ec2_env: Ec2Env) -> None:
    target = ec2_env.target("reboot_fixable")  # fixed after 2 reboots
    assert ec2_env.run("ec2.reboot", target, {"times": 3}) == {"healthy": True, "reboots": 2}
    assert ec2_env.calls("RebootInstances") == 2
    # Re-running (resume) sees healthy checks and reboots no more.
    assert ec2_env.run("ec2.reboot", target, {"times": 3}) == {"healthy": True, "reboots": 0}
    assert ec2_env.calls("RebootInstances") == 2


def test_reboot_that_does_not_help_reports_unhealthy(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    started = ec2_env.clock.now()
    result = ec2_env.run("ec2.reboot", target, {"times": 2, "timeout": "5m"})
    assert result == {"healthy": False, "reboots": 2}
    # Each boot crashed (impaired once it settled): judged after `settle` (3m), not 5m.
    assert ec2_env.clock.now() - started == 2 * 180
    assert ec2_env.calls("RebootInstances") == 2


def test_reboot_with_settle_at_the_timeout_waits_the_whole_timeout(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    started = ec2_env.clock.now()
    result = ec2_env.run("ec2.reboot", target, {"times": 2, "timeout": "5m", "settle": "5m"})
    assert result == {"healthy": False, "reboots": 2}
    assert ec2_env.clock.now() - started >= 2 * 300


def test_a_second_reboot_goes_as_soon_as_the_first_boot_has_crashed(ec2_env: Ec2Env) -> None:
    target = ec2_env.target("reboot_fixable")  # the second reboot fixes it
    started = ec2_env.clock.now()
    result = ec2_env.run("ec2.reboot", target, {"times": 3, "timeout": "10m", "settle": "2m"})
    assert result == {"healthy": True, "reboots": 2}
    assert ec2_env.calls("RebootInstances") == 2
    # 2m for the first boot to show it crashed, then the second boot (60 s) and a poll.
    assert 180 <= ec2_env.clock.now() - started < 240


def test_reboot_lets_a_boot_in_progress_finish_first(ec2_env: Ec2Env) -> None:
    target = ec2_env.target("reboot_fixable")
    ec2_env.client.reboot_instances(InstanceIds=[target.id])
    ec2_env.client.reboot_instances(InstanceIds=[target.id])  # the sensor is fixed now
    result = ec2_env.run("ec2.reboot", target, {"times": 3})
    assert result == {"healthy": True, "reboots": 0}


def test_reboot_without_verify_reboots_every_time(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    result = ec2_env.run("ec2.reboot", target, {"times": 3, "verify": False, "timeout": "2m"})
    assert result == {"healthy": None, "reboots": 3}
    assert ec2_env.calls("RebootInstances") == 3


def test_reboot_of_a_stopped_instance_fails(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    ec2_env.run("ec2.stop", target)
    with pytest.raises(StepFailed) as failed:
        ec2_env.run("ec2.reboot", target)
    assert str(failed.value) == (
        f"{target.id} is not running (the instance is stopped); a reboot needs a running instance")


def test_reboot_plan(ec2_env: Ec2Env) -> None:
    assert ec2_env.plan("ec2.reboot", {"status": "ok"}) == Plan(skip="status checks already ok")
    assert ec2_env.plan("ec2.reboot", {"status": "impaired"}, {"times": 2}) == Plan(calls=(
        PlannedCall("ec2:RebootInstances", True, "up to 2 reboots"),
        PlannedCall("ec2:DescribeInstanceStatus", False, "up to 2 reboots")))


# --- ec2.verify_status ---


def test_verify_status_names_the_impaired_check(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    with pytest.raises(StepFailed) as failed:
        ec2_env.run("ec2.verify_status", target, {"timeout": "10m"})
    assert str(failed.value) == (f"status checks of {target.id} not ok after 10m: instance "
                                 "check impaired (reachability failed), system check ok")


def test_verify_status_passes_once_checks_are_ok(ec2_env: Ec2Env) -> None:
    target = ec2_env.target("reboot_fixable")
    for _ in range(2):
        ec2_env.client.reboot_instances(InstanceIds=[target.id])
    assert ec2_env.run("ec2.verify_status", target) == {"status": "ok"}


def test_verify_status_fails_at_once_on_a_stopped_instance(ec2_env: Ec2Env) -> None:
    target = ec2_env.target()
    ec2_env.run("ec2.stop", target)
    started = ec2_env.clock.now()
    with pytest.raises(WaitFailed) as failed:
        ec2_env.run("ec2.verify_status", target)
    assert str(failed.value) == f"{target.id} status checks ok: the instance is stopped"
    assert ec2_env.clock.now() == started


def test_describe_checks() -> None:
    assert describe_checks(None) == "instance check unknown, system check unknown"
    assert describe_checks({
        "InstanceStatus": {"Status": "ok", "Details": [{"Name": "reachability",
                                                         "Status": "passed"}]},
        "SystemStatus": {"Status": "impaired", "Details": [
            {"Name": "reachability", "Status": "failed"}]},
    }) == "instance check ok, system check impaired (reachability failed)"


def test_power_actions_declare_their_contract() -> None:
    stop, start, reboot, verify = (get(n) for n in (
        "ec2.stop", "ec2.start", "ec2.reboot", "ec2.verify_status"))
    assert stop is not None and start is not None and reboot is not None and verify is not None
    assert stop.batches == {"ec2:StopInstances": 1000}
    assert start.batches == {"ec2:StartInstances": 1000}
    assert reboot.batches == {"ec2:RebootInstances": 1000}
    assert stop.permissions == ("ec2:DescribeInstances", "ec2:StopInstances",
                                "ec2:DescribeCapacityReservations",
                                "ec2:CreateCapacityReservation", "ec2:CreateTags")
    assert "stop-protection" in stop.risks and "instance-store-data-loss" in stop.risks
    assert (stop.undo, start.undo) == ("ec2.start", "ec2.stop")
    assert not verify.mutating and stop.mutating


def test_unused_target_is_untouched(ec2_env: Ec2Env) -> None:
    """Guard against actions acting on the wrong instance: the other plain one stays up."""
    ec2_env.run("ec2.stop", ec2_env.target(index=0))
    other: Target = ec2_env.target(index=1)
    assert ec2_env.state(other.id) == "running"
