"""ssm.run_command: the same end on both engines (it did not export before).

Targets are healthy instances (Online in SSM) launched beside the sandbox's fleet, or
the fleet's boot-looping ones (never Online); the end state is what SSM tells of the
commands sent to each target: their document, lines and how they ended.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from parity_support import both_engines, one_step
from sfn_support import NO_RETRIES, REGION, ec2_targets, from_text, run_one_target

from remediate.actions.contract import Target
from remediate.clock import VirtualClock
from remediate.export.moto_engine import MotoStepFunctions
from remediate.sandbox import Fleet, FleetSpec, Sandbox

Commands = Counter[tuple[str, tuple[str, ...], str, int]]


class Healthy:
    """Launches ``count`` healthy instances before each run; they are the targets."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.ids: list[str] = []

    def prepare(self, sb: Sandbox, fleet: Fleet, clock: VirtualClock) -> dict[str, Any]:
        setup = fleet.regions[REGION]
        ec2 = sb.client("ec2", REGION, NO_RETRIES)
        self.ids = [str(ec2.run_instances(
            ImageId=setup.rescue_windows_ami, InstanceType="m5.large", MinCount=1, MaxCount=1,
            SubnetId=next(iter(setup.subnets.values())))["Instances"][0]["InstanceId"])
            for _ in range(self.count)]
        clock.advance(sb.durations.instance_start + sb.durations.instance_boot + 1)
        return {}

    def targets(self, fleet: Fleet) -> list[Target]:
        return [Target("ec2-instance", instance_id, REGION) for instance_id in self.ids]


def commands(sb: Sandbox, instance_ids: list[str]) -> Commands:
    """(document, lines, status, exit code) of every command sent to these instances."""
    ssm = sb.client("ssm", REGION, NO_RETRIES)
    seen: Commands = Counter()
    for instance_id in instance_ids:
        for command in ssm.list_commands(InstanceId=instance_id)["Commands"]:
            invocation = ssm.get_command_invocation(CommandId=command["CommandId"],
                                                    InstanceId=instance_id)
            seen[(command["DocumentName"], tuple(command["Parameters"]["commands"]),
                  invocation["Status"], invocation["ResponseCode"])] += 1
    return seen


def test_commands_run_on_every_target_with_their_parameters_quoted() -> None:
    healthy = Healthy(2)
    text = one_step("ssm.run_command", {"commands": ["Write-Output $Name"],
                                        "parameters": {"Name": "it's me", "Count": 3}})

    found = both_engines(FleetSpec(plain=1, azs=1), text,
                         lambda sb, _fleet: commands(sb, healthy.ids),
                         prepare=healthy.prepare, targets=healthy.targets)

    lines = ("$Name = 'it''s me'", "$Count = '3'", "Write-Output $Name")
    assert found.local == found.stepfunctions == Counter(
        {("AWS-RunPowerShellScript", lines, "Success", 0): 2})
    assert (found.local_statuses, found.sfn_status) == ({"succeeded": 2}, "SUCCEEDED")


def test_a_script_file_runs_with_its_shell() -> None:
    healthy = Healthy(1)
    text = one_step("ssm.run_command", {"script": "scripts/crowdstrike-offline-repair.ps1"})

    found = both_engines(FleetSpec(plain=1, azs=1), text,
                         lambda sb, _fleet: commands(sb, healthy.ids),
                         prepare=healthy.prepare, targets=healthy.targets)

    [(document, lines, status, code)] = found.local
    assert found.local == found.stepfunctions
    assert (document, status, code) == ("AWS-RunPowerShellScript", "Success", 0)
    assert lines[0].startswith("# crowdstrike-offline-repair")


FAILING = ["Remove-Item C-00000291*.sys # vol-0000000000000beef"]  # a disk not attached


def test_a_failing_command_fails_the_step_unless_told_otherwise() -> None:
    healthy = Healthy(1)
    for fail_on_error, status in ((True, "failed"), (False, "succeeded")):
        text = one_step("ssm.run_command", {"commands": FAILING,
                                            "fail_on_error": fail_on_error})

        found = both_engines(FleetSpec(plain=1, azs=1), text,
                             lambda sb, _fleet: commands(sb, healthy.ids),
                             prepare=healthy.prepare, targets=healthy.targets)

        assert found.local == found.stepfunctions == Counter(
            {("AWS-RunPowerShellScript", tuple(FAILING), "Failed", 1): 1})
        assert found.local_statuses == {status: 1}


def test_an_instance_never_online_times_the_command_out() -> None:
    text = one_step("ssm.run_command", {"commands": ["hostname"], "timeout": "30s"})

    found = both_engines(FleetSpec(plain=1, azs=1), text,
                         lambda sb, fleet: commands(sb, fleet.instance_ids()))

    assert found.local == found.stepfunctions == Counter(
        {("AWS-RunPowerShellScript", ("hostname",), "DeliveryTimedOut", -1): 1})
    assert found.local_statuses == {"failed": 1}


def test_a_target_of_another_platform_is_refused_by_ssm() -> None:
    text = one_step("ssm.run_command", {"document": "AWS-RunShellScript", "commands": ["id"]})

    found = both_engines(FleetSpec(plain=1, azs=1), text,
                         lambda sb, fleet: commands(sb, fleet.instance_ids()),
                         targets=lambda fleet: ec2_targets(fleet.targets))

    # SendCommand refuses a Linux document for a Windows instance: nothing ran.
    assert found.local == found.stepfunctions == Counter()
    assert found.local_statuses == {"failed": 1}


def test_a_lost_send_command_reply_is_not_sent_again_on_step_functions(
        sfn_sandbox: Sandbox, sfn_engine: MotoStepFunctions, sfn_clock: VirtualClock) -> None:
    """Locally the step adopts the command a lost reply started (its comment finds it); an
    iteration cannot search SSM's listing by comment, so it fails rather than run the
    script a second time."""
    fleet = sfn_sandbox.build_fleet(FleetSpec(plain=1, azs=1))
    healthy = Healthy(1)
    healthy.prepare(sfn_sandbox, fleet, sfn_clock)
    sfn_sandbox.lose_replies("SendCommand", times=1)
    playbook, params = from_text(one_step("ssm.run_command", {"commands": ["hostname"]}))

    outcome = run_one_target(sfn_sandbox, sfn_engine, playbook, params,
                             healthy.targets(fleet)[0])

    [instance_id] = healthy.ids
    assert (outcome.status, outcome.error, outcome.cause) == (
        "FAILED", "remediate.Failed",
        f"step step failed: SendCommand to {instance_id} lost its reply: its command may be "
        "running, and a Step Functions iteration cannot look for it by its comment, so it is "
        f"not sent again (ListCommandInvocations for {instance_id} shows it)")
    # One command (still running when the step gave up), never a second.
    [(document, lines, _status, _code)] = commands(sfn_sandbox, healthy.ids).elements()
    assert (document, lines) == ("AWS-RunPowerShellScript", ("hostname",))
