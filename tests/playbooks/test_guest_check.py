"""The offline repair with the in-guest proof of recovery after its status checks, on a
moving clock: each repaired target's own SSM agent runs crowdstrike-verify.ps1, which
finds no faulty channel file and the sensor running."""

from __future__ import annotations

import shutil
from pathlib import Path

from test_builtin_playbooks import PLAYBOOKS, healthy, run

from remediate.clock import ScaledClock
from remediate.sandbox import FleetSpec, Sandbox

VERIFY_GUEST = """  - id: verify_guest
    action: ssm.verify_guest
    with:
      online_within: 5m
  - id: confirm_backup
"""


def with_guest_check(tmp_path: Path) -> Path:
    folder = tmp_path / "playbooks"
    shutil.copytree(PLAYBOOKS, folder)
    playbook = folder / "ec2-offline-repair.yaml"
    text = playbook.read_text()
    assert text.count("  - id: confirm_backup\n") == 1
    playbook.write_text(text.replace("  - id: confirm_backup\n", VERIFY_GUEST))
    return playbook


def test_repaired_targets_pass_the_in_guest_check_on_a_moving_clock(tmp_path: Path) -> None:
    with Sandbox(clock=ScaledClock(100.0)) as sandbox:
        fleet = sandbox.build_fleet(FleetSpec(plain=2, azs=1))

        assert run(sandbox, str(with_guest_check(tmp_path)), tmp_path) == 0

        ssm = sandbox.client("ssm")
        for target in fleet.targets:
            assert healthy(sandbox, target.instance_id)
            (command,) = ssm.list_commands(InstanceId=target.instance_id)["Commands"]
            assert command["Parameters"]["commands"][1].startswith("# crowdstrike-verify.ps1")
            invocation = ssm.get_command_invocation(CommandId=command["CommandId"],
                                                    InstanceId=target.instance_id)
            assert (invocation["Status"], invocation["StandardOutputContent"]) == (
                "Success",
                f"{target.instance_id}: no faulty C-00000291*.sys; CSFalconService Running")
