"""One target's iteration, run by moto: failures, rollback, retries, ``when``, ``continue``."""

from __future__ import annotations

from sfn_support import (
    PLAYBOOKS,
    REGION,
    UNTOUCHED_BROKEN,
    EndState,
    backups,
    builtin,
    ec2_targets,
    end_state,
    from_text,
    rescue_instances,
    run_one_target,
)

from remediate.actions.contract import Target
from remediate.export.moto_engine import MotoStepFunctions
from remediate.sandbox import FleetSpec, Sandbox

SABOTAGE = """  - id: sabotage
    action: control.fail
    with: {message: no repair today}
"""
GIVE_UP = """
version: 1
name: reboot-or-give-up
targets: {kind: ec2-instance, tags: {incident: crowdstrike-2024-07-19}}
steps:
  - id: reboot
    action: ec2.reboot
    with: {times: 1, timeout: 3m}
    retries: {attempts: 2, delay: 10s}
  - id: verify
    action: ec2.verify_status
    with: {timeout: 1m}
    on_failure: continue
  - id: give_up
    action: control.fail
    when: {value: steps.verify.status, equals: failed}
    with:
      message: "${{ target.id }} still broken after ${{ steps.reboot.outputs.reboots }} reboot"
"""


def test_a_failure_with_the_root_on_the_rescue_instance_is_rolled_back_and_cleaned_up(
        sfn_sandbox: Sandbox, sfn_engine: MotoStepFunctions) -> None:
    fleet = sfn_sandbox.build_fleet(FleetSpec(plain=1))
    (target,) = fleet.targets
    text = (PLAYBOOKS / "ec2-offline-repair.yaml").read_text()
    sabotaged = text.replace("  - id: repair\n", SABOTAGE + "  - id: repair\n")
    playbook, params = from_text(sabotaged,
                                 rescue_image_id=fleet.regions[REGION].rescue_windows_ami)

    outcome = run_one_target(sfn_sandbox, sfn_engine, playbook, params,
                             ec2_targets(fleet.targets)[0])

    assert (outcome.status, outcome.error, outcome.cause) == (
        "FAILED", "remediate.RolledBack",
        "step sabotage failed: no repair today; rolled back")
    # Back where it was: running on its own (still broken) root volume; the backup stays;
    # the rescue instance that held the volume is gone.
    assert end_state(sfn_sandbox, target) == UNTOUCHED_BROKEN
    assert len(backups(sfn_sandbox, target)) == 1
    assert rescue_instances(sfn_sandbox) == []
    assert sfn_sandbox.api_call_counts()[("ec2", "RunInstances")] == 1


def test_a_target_that_cannot_be_inspected_is_refused(
        sfn_sandbox: Sandbox, sfn_engine: MotoStepFunctions) -> None:
    sfn_sandbox.build_fleet(FleetSpec(plain=1))
    playbook, params = builtin("ec2-reboot-first.yaml")

    outcome = run_one_target(sfn_sandbox, sfn_engine, playbook, params,
                             Target("ec2-instance", "i-0123456789abcdef0", REGION))

    assert (outcome.status, outcome.error) == ("FAILED", "remediate.Refused")
    # The local engine's words: the inspection is the same program.
    assert outcome.cause == "inspection failed: instance i-0123456789abcdef0 not found"
    assert sfn_sandbox.api_call_counts()[("ec2", "RebootInstances")] == 0


def test_continue_records_the_failure_and_when_reads_it(
        sfn_sandbox: Sandbox, sfn_engine: MotoStepFunctions) -> None:
    fleet = sfn_sandbox.build_fleet(FleetSpec(plain=1, reboot_fixable=1, reboots_to_fix=1))
    playbook, params = from_text(GIVE_UP)
    broken, fixable = fleet.by_kind("plain")[0], fleet.by_kind("reboot_fixable")[0]

    gave_up = run_one_target(sfn_sandbox, sfn_engine, playbook, params,
                             ec2_targets([broken])[0], run_id="run-a")
    fixed = run_one_target(sfn_sandbox, sfn_engine, playbook, params,
                           ec2_targets([fixable])[0], run_id="run-b")

    assert (gave_up.status, gave_up.error, gave_up.cause) == (
        "FAILED", "remediate.Failed",
        f"step give_up failed: {broken.instance_id} still broken after 1 reboot")
    assert fixed.status == "SUCCEEDED"
    assert fixed.output["steps"] == {
        "reboot": {"status": "succeeded", "outputs": {"healthy": True, "reboots": 1}},
        "verify": {"status": "succeeded", "outputs": {"status": "ok"}},
        "give_up": {"status": "skipped", "outputs": {}},
    }
    assert end_state(sfn_sandbox, fixable) == EndState("running", True, False, True)


def test_step_retries_run_the_whole_step_again(
        sfn_sandbox: Sandbox, sfn_engine: MotoStepFunctions) -> None:
    fleet = sfn_sandbox.build_fleet(FleetSpec(plain=1))
    playbook, params = from_text(GIVE_UP)
    sfn_sandbox.fail("RebootInstances", "IncorrectInstanceState", "not now")

    outcome = run_one_target(sfn_sandbox, sfn_engine, playbook, params,
                             ec2_targets(fleet.targets)[0])

    assert (outcome.status, outcome.error) == ("FAILED", "remediate.Failed")
    target = ec2_targets(fleet.targets)[0].id
    assert outcome.cause == (f"step reboot failed: RebootInstances for {target} failed: not now "
                             "(Service: ec2, Status Code: 400, Request ID: request-id)")
    # 2 attempts of the step, each making the call 4 times (its own 3 retries).
    assert sfn_sandbox.api_call_counts()[("ec2", "RebootInstances")] == 2 * (1 + 3)
