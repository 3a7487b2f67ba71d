"""Rescue instances that SSM can manage, checked before anything changes.

Where Default Host Management Configuration is off and the playbook gives rescue
instances no instance profile, they would run but never come online in SSM: every
target would wait the 20-minute ready timeout and fail, stopped. The dry run shows a
blocking finding (exit 2) and the real run refuses every target of that account and
Region before its backup, stop or rescue launch; ``--param rescue_instance_profile=``
(a role with AmazonSSMManagedInstanceCore) makes the same fleet repairable. A
GetServiceSetting the caller may not make is a warning, not a refusal.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_support import (
    OFFLINE_REPAIR,
    CliSandbox,
    backups,
    cli_sandbox,
    moving_clock,
    repair_problems,
    rescue_instances,
    root_states,
    run_cli,
)
from remediate.sandbox import FleetSpec

ACCOUNT = "123456789012"
HINT = ("(hint: --param rescue_instance_profile=PROFILE (its role with the AWS managed policy "
        "AmazonSSMManagedInstanceCore), or turn on Default Host Management Configuration in "
        "that account and Region (Systems Manager, Fleet Manager))")
SETTING = ("arn:aws:ssm:us-east-1:*:servicesetting/ssm/managed-instance/"
           "default-ec2-instance-management-role")
PROFILE = "remediate-rescue"


def refusal(instance_id: str) -> str:
    return (f"blocked by rescue-unmanageable: rescue instances in default/us-east-1 (account "
            f"{ACCOUNT}) would never be managed by SSM: no rescue_instance_profile, and "
            "Default Host Management Configuration is off there; the repair could not run and "
            f"each target would wait the ready timeout: no rescue instance could repair "
            f"{instance_id} {HINT}")


@pytest.fixture
def dhmc_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[CliSandbox]:
    with cli_sandbox(monkeypatch, FleetSpec(plain=2, azs=1, dhmc=False)) as cli:
        yield cli


def test_the_dry_run_blocks_an_account_and_region_without_dhmc_or_profile(
        dhmc_off: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli("plan", OFFLINE_REPAIR)

    out = capsys.readouterr().out
    assert code == 2
    assert f"      {refusal('<id>')}\n" in out
    assert "\n2 targets: 0 would be worked on, 2 refused; estimated 0s\n" in out
    assert f"      2 x rescue-unmanageable [block] {HINT}\n" in out
    assert "\nrescue instances reach SSM by: none (refused) in default/us-east-1\n" in out
    # Read once for the account and Region, and nothing mutated.
    assert Counter(c.operation for c in dhmc_off.sandbox.api_calls)["GetServiceSetting"] == 1
    assert dhmc_off.mutating_calls() == []


def test_the_real_run_refuses_every_target_before_the_first_stop(
        dhmc_off: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = dhmc_off.fleet.instance_ids()
    before = root_states(dhmc_off.ec2, ids)

    code = run_cli("run", OFFLINE_REPAIR, "--yes", "--no-progress",
                   "--journal", str(tmp_path / "j.sqlite"))

    err = capsys.readouterr().err
    assert code == 2
    for instance_id in ids:
        assert err.count(f"{instance_id} (us-east-1): refused: {refusal(instance_id)}\n") == 1
    assert dhmc_off.mutating_calls() == []
    assert root_states(dhmc_off.ec2, ids) == before
    assert all(s.state == "running" for s in before.values())
    assert rescue_instances(dhmc_off.ec2) == []
    assert all(backups(dhmc_off.ec2, i) == [] for i in ids)


def test_a_rescue_instance_profile_makes_the_same_fleet_repairable(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # On a moving clock: the rescue instances must come online in SSM as time passes.
    with cli_sandbox(monkeypatch, FleetSpec(plain=2, azs=1, dhmc=False),
                     clock=moving_clock()) as cli:
        profile = cli.sandbox.ssm_instance_profile(PROFILE)
        ids = cli.fleet.instance_ids()
        before = root_states(cli.ec2, ids)

        code = run_cli("run", OFFLINE_REPAIR, "--yes", "--no-progress", "--param",
                       f"rescue_instance_profile={profile}",
                       "--journal", str(tmp_path / "j.sqlite"))

        err = capsys.readouterr().err
        assert code == 0, err
        assert "rescue-unmanageable" not in err
        for instance_id in ids:
            assert repair_problems(cli.ec2, before[instance_id]) == []
        launches = [c for c in cli.sandbox.api_calls if c.operation == "RunInstances"
                    and not c.dry_run]
        assert launches
        # EC2's query protocol, as moto parsed it: name -> values.
        assert all(c.request.get("IamInstanceProfile.Name") == [profile] for c in launches)
        # The profile decides: DHMC is not asked.
        assert "GetServiceSetting" not in {c.operation for c in cli.sandbox.api_calls}


def test_get_service_setting_denied_is_a_warning_not_a_refusal(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with cli_sandbox(monkeypatch, FleetSpec(plain=2, azs=1)) as cli:
        cli.sandbox.fail("GetServiceSetting", "AccessDeniedException",
                         "User is not authorized to perform: ssm:GetServiceSetting")
        code = run_cli("plan", OFFLINE_REPAIR)
        out = capsys.readouterr().out
        assert run_cli("plan", OFFLINE_REPAIR, "--format", "json") == 0
        report = json.loads(capsys.readouterr().out)

    assert code == 0
    assert "\n2 targets: 2 would be worked on, 0 refused;" in out
    assert ("      2 x rescue-ssm-unchecked [info] (hint: grant ssm:GetServiceSetting on "
            "arn:aws:ssm:REGION:ACCOUNT:servicesetting/ssm/managed-instance/"
            "default-ec2-instance-management-role)\n") in out
    assert "rescue-unmanageable" not in out
    assert "\nrescue instances reach SSM by: could not be read in default/us-east-1\n" in out
    detail = ("could not check that rescue instances in default/us-east-1 would be managed by "
              "SSM (Default Host Management Configuration): GetServiceSetting: "
              "AccessDeniedException: User is not authorized to perform: ssm:GetServiceSetting; "
              f"grant ssm:GetServiceSetting on {SETTING}")
    found = [f for t in report["targets"] for f in t["findings"]
             if f["kind"] == "rescue-ssm-unchecked"]
    assert found == [{"kind": "rescue-ssm-unchecked", "severity": "info", "detail": detail}] * 2


def test_the_run_on_step_functions_refuses_the_same_way_before_any_execution(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from remediate.export.moto_engine import MotoStepFunctions

    with cli_sandbox(monkeypatch, FleetSpec(plain=2, azs=1, dhmc=False)) as cli, \
            MotoStepFunctions(cli.clock):
        ids = cli.fleet.instance_ids()
        before = root_states(cli.ec2, ids)
        report = tmp_path / "run.json"

        code = run_cli("run", OFFLINE_REPAIR, "--engine", "stepfunctions", "--role-arn",
                       "arn:aws:iam::123456789012:role/remediate-sfn", "--yes",
                       "--no-progress", "--report", f"json:{report}")

        err = capsys.readouterr().err
        assert code == 2, err
        statuses = {t["id"]: (t["status"], t["error"])
                    for t in json.loads(report.read_text())["targets"]}
        assert statuses == {i: ("refused", refusal(i)) for i in ids}
        assert root_states(cli.ec2, ids) == before
        assert rescue_instances(cli.ec2) == []
        sfn = cli.sandbox.client("stepfunctions")
        assert [m for m in sfn.list_state_machines()["stateMachines"]
                if sfn.list_executions(stateMachineArn=m["stateMachineArn"])["executions"]] == []


def test_the_audit_says_how_rescue_instances_reach_ssm(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    with cli_sandbox(monkeypatch, FleetSpec(plain=1, azs=1)) as cli:
        assert run_cli("plan", OFFLINE_REPAIR, "--report", f"md:{tmp_path}/plan.md") == 0
        assert run_cli("plan", OFFLINE_REPAIR, "--param",
                       f"rescue_instance_profile={PROFILE}") == 0
        assert cli.mutating_calls() == []

    dhmc, profile = capsys.readouterr().out.split("dry run of ")[1:]
    assert ("\nrescue instances reach SSM by: Default Host Management Configuration (role "
            "service-role/AWSSystemsManagerDefaultEC2InstanceManagementRole) in "
            "default/us-east-1\n") in dhmc
    assert (f"\nrescue instances reach SSM by: instance profile {PROFILE} in "
            "default/us-east-1\n") in profile
    assert ("\nRescue instances reach SSM by: Default Host Management Configuration (role "
            "service-role/AWSSystemsManagerDefaultEC2InstanceManagementRole) in "
            "default/us-east-1.\n") in (tmp_path / "plan.md").read_text(encoding="utf-8")
