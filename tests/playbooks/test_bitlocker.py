"""BitLocker-locked roots in the offline repair (issue 18): unlocked on the rescue
instance with the recovery key from the escrow the playbook names, locked again, and
the key never passes through remediate; without a usable key the target is put back
as it was and the report says which key ID to look up.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from test_builtin_playbooks import PLAYBOOKS, healthy, rescue_instances, root_mapping, run

from remediate.actions.registry import get
from remediate.clock import ScaledClock, VirtualClock
from remediate.sandbox import FleetSpec, Sandbox, Target
from remediate.sandbox.incident import CHANNEL_FILE_PATH

PLAYBOOK = "ec2-offline-repair.yaml"


def report(sandbox: Sandbox, tmp_path: Path, params: dict[str, str], code: int,
           playbook: str | Path = PLAYBOOK) -> dict[str, Any]:
    path = tmp_path / "run.json"
    assert run(sandbox, str(playbook), tmp_path, params=params,
               reports=(f"json:{path}",)) == code
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def whatever_fails(tmp_path: Path) -> Path:
    """The offline repair with no failure budget to spend (every target is tried)."""
    folder = tmp_path / "playbooks"
    shutil.copytree(PLAYBOOKS, folder)
    playbook = folder / PLAYBOOK
    playbook.write_text(playbook.read_text().replace("max_failure_percent: 10",
                                                     "max_failure_percent: 100"))
    return playbook


def by_id(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["id"]: t for t in found["targets"]}


def key_of(sandbox: Sandbox, target: Target) -> Any:
    return sandbox.world.bitlocker_volumes[target.root_volume_id]


def assert_never_seen(sandbox: Sandbox, tmp_path: Path, secret: str, since: int) -> None:
    """``secret`` is in no request remediate sent, nor in its journal or reports."""
    for call in sandbox.api_calls[since:]:
        assert secret not in json.dumps(call.request, default=str), call.operation
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_a_locked_root_is_unlocked_with_its_escrowed_key_and_the_rest_need_a_human(
        tmp_path: Path) -> None:
    with Sandbox(clock=VirtualClock()) as sandbox:
        fleet = sandbox.build_fleet(FleetSpec(plain=1, bitlocker=3, azs=1))
        escrowed, wrong, missing = fleet.by_kind("bitlocker")
        ssm = sandbox.client("ssm")
        ssm.put_parameter(Name=f"/bitlocker/{escrowed.instance_id}", Type="SecureString",
                          Value=key_of(sandbox, escrowed).password)
        ssm.put_parameter(Name=f"/bitlocker/{wrong.instance_id}", Type="SecureString",
                          Value=key_of(sandbox, missing).password)
        since = len(sandbox.api_calls)

        found = by_id(report(sandbox, tmp_path,
                             {"bitlocker_keys": "ssm:/bitlocker/{instance_id}"}, code=2,
                             playbook=whatever_fails(tmp_path)))

        for fixed in (escrowed, *fleet.by_kind("plain")):
            assert found[fixed.instance_id]["status"] == "succeeded"
            assert healthy(sandbox, fixed.instance_id)
            assert not sandbox.channel_file_present(fixed.root_volume_id)
        outputs = [i["CommandPlugins"][0]["Output"] for i in ssm.list_command_invocations(
            Details=True)["CommandInvocations"]]
        volume = escrowed.root_volume_id
        (said,) = [o for o in outputs if volume in o]
        # The device is the rescue instance's slot it got (xvdf..xvdp).
        assert re.sub(r"\(xvd[f-p]\)", "(xvd?)", said) == (
            f"{volume}: unlocked (recovery key ID {key_of(sandbox, escrowed).key_id}) with the "
            f"key at ssm:/bitlocker/{escrowed.instance_id}\n"
            f"{volume} (xvd?): deleted {CHANNEL_FILE_PATH}\n{volume}: locked again")
        for target, why in (
                (wrong, f"the key at ssm:/bitlocker/{wrong.instance_id} does not unlock it: "
                        "store the recovery password of that key ID there"),
                (missing, f"no recovery key readable at ssm:/bitlocker/{missing.instance_id} "
                          "in us-east-1 (ParameterNotFound): store it there, or give the "
                          "rescue instance profile access to it")):
            key_id = key_of(sandbox, target).key_id
            assert found[target.instance_id]["status"] == "rolled_back"
            assert (f"{target.root_volume_id}: BitLocker-locked (recovery key ID {key_id}): "
                    f"{why}") in found[target.instance_id]["error"]
            # Put back as it was: its own root volume, the channel file still there.
            assert root_mapping(sandbox, target.instance_id)["Ebs"]["VolumeId"] == (
                target.root_volume_id)
            assert sandbox.channel_file_present(target.root_volume_id)
        assert rescue_instances(sandbox) == []
        for target in fleet.by_kind("bitlocker"):
            assert_never_seen(sandbox, tmp_path, key_of(sandbox, target).password, since)


def test_a_key_in_secrets_manager_by_volume_id_on_a_moving_clock(tmp_path: Path) -> None:
    with Sandbox(clock=ScaledClock(100.0)) as sandbox:
        fleet = sandbox.build_fleet(FleetSpec(plain=0, bitlocker=1, azs=1))
        (target,) = fleet.targets
        sandbox.client("secretsmanager").create_secret(
            Name=f"bitlocker/{target.root_volume_id}",
            SecretString=key_of(sandbox, target).password)
        since = len(sandbox.api_calls)

        found = by_id(report(sandbox, tmp_path,
                             {"bitlocker_keys": "secretsmanager:bitlocker/{volume_id}"}, code=0))

        assert found[target.instance_id]["status"] == "succeeded"
        assert healthy(sandbox, target.instance_id)
        assert not sandbox.channel_file_present(target.root_volume_id)
        # Still BitLocker-protected: it was locked again, the key not taken off it.
        assert target.root_volume_id in sandbox.world.bitlocker_volumes
        # The script got the reference, never the key.
        (sent,) = [c for c in sandbox.api_calls[since:] if c.operation == "SendCommand"]
        assert f"$BitLockerKeys = 'secretsmanager:bitlocker/{target.root_volume_id}'" in (
            json.dumps(sent.request).replace("\\n", "\n"))
        assert_never_seen(sandbox, tmp_path, key_of(sandbox, target).password, since)


def test_without_an_escrow_a_locked_root_says_its_key_id(tmp_path: Path) -> None:
    with Sandbox(clock=VirtualClock()) as sandbox:
        fleet = sandbox.build_fleet(FleetSpec(plain=0, bitlocker=1, azs=1))
        (target,) = fleet.targets

        found = by_id(report(sandbox, tmp_path, {}, code=2))

        assert found[target.instance_id]["status"] == "rolled_back"
        assert (f"BitLocker-locked (recovery key ID {key_of(sandbox, target).key_id}) and no "
                "key escrow named: set the repair step's bitlocker_keys") in (
            found[target.instance_id]["error"])


@pytest.mark.parametrize(("reference", "shell", "problem"), [
    ("ssm:/bitlocker/all", "powershell",
     "ssm:/bitlocker/all names one key for every volume: put {instance_id} or {volume_id} "
     "in it (each BitLocker volume has its own recovery key)"),
    ("ssm:/bitlocker/{instance}", "powershell",
     "ssm:/bitlocker/{instance}: only {instance_id} and {volume_id} may stand in braces"),
    ("ssm:/bitlocker/{volume_id}", "sh",
     "scripts/crowdstrike-offline-repair.sh runs on a Linux rescue instance, whose ntfs-3g "
     "cannot open BitLocker: unlocking needs the PowerShell script on a Windows one"),
])
def test_an_escrow_that_cannot_name_one_key_per_volume_is_refused_by_validate(
        reference: str, shell: str, problem: str) -> None:
    action = get("rescue.repair")
    assert action is not None
    script = ("scripts/crowdstrike-offline-repair.ps1" if shell == "powershell"
              else "scripts/crowdstrike-offline-repair.sh")
    problems = action.validate(
        {"script": script, "shell": "auto", "bitlocker_keys": reference},
        str(Path(__file__).parents[2] / "playbooks"))
    assert [(p.path, p.message) for p in problems] == [(("bitlocker_keys",), problem)]
