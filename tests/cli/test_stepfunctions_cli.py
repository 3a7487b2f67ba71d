"""`remediate export`, `deploy` and `run --engine stepfunctions` against the sandbox, with
moto executing the state machines on the sandbox's clock."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from botocore.exceptions import ClientError

from cli_support import (
    OFFLINE_REPAIR,
    REBOOT_FIRST,
    CliSandbox,
    backups,
    cli_sandbox,
    json_file,
    point_commands_at,
    rescue_instances,
    root_state,
    run_cli,
    status_ok,
)
from remediate.export import compile_playbook, definition_size, role_policy
from remediate.export.dropped import FINDINGS
from remediate.export.moto_engine import MotoStepFunctions
from remediate.language.loader import bind_params, load_file
from remediate.leases import LeaseTable, Owner
from remediate.sandbox import FleetSpec

ROLE = "arn:aws:iam::123456789012:role/remediate-sfn"
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:ec2-reboot-first"
RUN_COMMAND = """\
version: 1
name: run-a-command
description: One SSM command on each instance, told its own id.
targets:
  kind: ec2-instance
  tags: {incident: crowdstrike-2024-07-19}
steps:
  - id: hello
    action: ssm.run_command
    with: {commands: ["echo hello $Me"], parameters: {Me: "${{ target.id }}"}}
"""

# A step whose id is the name of one of the state machine's own states.
OWN_STATE_NAME = """\
version: 1
name: own-state-name
targets:
  kind: ec2-instance
  tags: {incident: crowdstrike-2024-07-19}
steps:
  - id: outcome
    action: ec2.reboot
"""
OWN_STATE_NAME_ERROR = ("step outcome cannot be exported to Step Functions: its id names one "
                        "of the state machine's own states: give the step another id")


def reboot_first(**params: str) -> tuple[object, dict[str, object]]:
    loaded = load_file(REBOOT_FIRST)
    assert loaded.playbook is not None
    bound, errors = bind_params(loaded.playbook, params)
    assert not errors
    return loaded.playbook, compile_playbook(loaded.playbook, bound)


@pytest.fixture
def with_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[CliSandbox, MotoStepFunctions]]:
    with cli_sandbox(monkeypatch, FleetSpec(plain=0, reboot_fixable=3, azs=2)) as cli, \
            MotoStepFunctions(cli.clock) as engine:
        yield cli, engine


@pytest.fixture
def sandbox(with_engine: tuple[CliSandbox, MotoStepFunctions]) -> CliSandbox:
    return with_engine[0]


def execution(cli: CliSandbox, engine: MotoStepFunctions, definition: dict[str, object]) -> str:
    """An execution of ``definition``, ended."""
    sfn = cli.sandbox.client("stepfunctions")
    machine = sfn.create_state_machine(name="one-state", definition=json.dumps(definition),
                                       roleArn=ROLE)["stateMachineArn"]
    arn = str(sfn.start_execution(stateMachineArn=machine, name="first")["executionArn"])
    assert engine.join(timeout=60)
    return arn


# ---- export ---------------------------------------------------------------------------------


def test_export_prints_the_definition_and_its_size(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli("export", REBOOT_FIRST, "--engine", "stepfunctions")

    out, err = capsys.readouterr()
    assert code == 0
    _, definition = reboot_first()
    assert json.loads(out) == definition
    assert err == f"warning: {FINDINGS}\nec2-reboot-first: {definition_size(definition)}\n"
    assert str(definition_size(definition)).endswith(" states")


def test_export_writes_the_definition_to_a_file(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out" / "reboot.asl.json"

    code = run_cli("export", REBOOT_FIRST, "--param", "max_reboots=2", "-o", str(target))

    out, err = capsys.readouterr()
    _, definition = reboot_first(max_reboots="2")
    assert (code, out) == (0, "")
    assert json.loads(target.read_text(encoding="utf-8")) == definition
    assert err == (f"warning: {FINDINGS}\nwrote {target}\n"
                   f"ec2-reboot-first: {definition_size(definition)}\n")


def test_a_playbook_that_does_not_export_is_one_line_and_exit_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    playbook = tmp_path / "run-a-command.yaml"
    playbook.write_text(RUN_COMMAND, encoding="utf-8")

    assert run_cli("export", str(playbook)) == 1
    # ssm.run_command exports, but not with a value Step Functions would have to quote.
    assert capsys.readouterr() == ("", "error: ssm.run_command cannot be exported to Step "
                                       "Functions: the script's variable Me is only known at "
                                       "run time, and Step Functions cannot quote a value for a "
                                       "shell: give it a literal value\n")
    playbook.write_text(OWN_STATE_NAME, encoding="utf-8")
    assert run_cli("export", str(playbook)) == 1
    assert capsys.readouterr() == ("", f"error: {OWN_STATE_NAME_ERROR}\n")


# ---- deploy ---------------------------------------------------------------------------------


def test_deploy_creates_then_updates_the_state_machine_and_prints_the_role_policy(
        sandbox: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    playbook, definition = reboot_first()
    size = definition_size(definition)

    code = run_cli("deploy", REBOOT_FIRST, "--engine", "stepfunctions", "--role-arn", ROLE)

    out, err = capsys.readouterr()
    assert code == 0
    policy = role_policy(playbook, definition, state_machine_arn=MACHINE)  # type: ignore[arg-type]
    assert out == f"{MACHINE}\n{json.dumps(policy, indent=2)}\n"
    assert err == (f"warning: {FINDINGS}\nec2-reboot-first: {size}; state machine created\n"
                   f"the role {ROLE} needs this policy:\n")
    sfn = sandbox.sandbox.client("stepfunctions")
    found = sfn.describe_state_machine(stateMachineArn=MACHINE)
    assert (json.loads(found["definition"]), found["roleArn"]) == (definition, ROLE)
    assert "ec2:RebootInstances" in json.dumps(policy)

    assert run_cli("deploy", REBOOT_FIRST, "--role-arn", ROLE) == 0
    assert capsys.readouterr().err.startswith(f"warning: {FINDINGS}\nec2-reboot-first: {size}; "
                                              "state machine unchanged\n")
    assert run_cli("deploy", REBOOT_FIRST, "--role-arn", ROLE, "--param", "max_reboots=1") == 0
    assert "; state machine updated\n" in capsys.readouterr().err
    _, changed = reboot_first(max_reboots="1")
    assert json.loads(sfn.describe_state_machine(stateMachineArn=MACHINE)["definition"]) == (
        changed)


# ---- run --engine stepfunctions ---------------------------------------------------------------


def test_run_on_stepfunctions_fixes_the_fleet_and_reports_like_a_local_run(
        sandbox: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = sorted(sandbox.fleet.instance_ids())
    report = tmp_path / "run.json"

    code = run_cli("run", REBOOT_FIRST, "--engine", "stepfunctions", "--role-arn", ROLE,
                   "--yes", "--no-progress", "--report", f"json:{report}",
                   "--report", f"junit:{tmp_path}/run.xml", "--report", f"md:{tmp_path}/run.md")

    err = capsys.readouterr().err
    assert code == 0, err
    assert all(status_ok(sandbox.ec2, i) for i in ids)
    junit = ET.parse(tmp_path / "run.xml").getroot()
    assert (junit.get("tests"), junit.get("failures"), junit.get("errors")) == ("3", "0", "0")
    assert sorted(c.get("name") or "" for c in junit.iter("testcase")) == ids
    markdown = (tmp_path / "run.md").read_text(encoding="utf-8")
    assert "**3 targets: 3 fixed.**" in markdown
    found = json_file(report)
    run_id = found["run_id"]
    execution = f"arn:aws:states:us-east-1:123456789012:execution:ec2-reboot-first:{run_id}"
    assert f"state machine ec2-reboot-first created: {MACHINE}\n" in err
    assert f"run {run_id}: execution {execution}\n" in err
    assert err.splitlines()[-1] == f"run {run_id} finished: 3 succeeded"
    assert found["summary"]["succeeded"] == 3 and found["summary"]["failed"] == 0
    # Outcomes per target come from the Map Runs; steps are not read (see the README).
    assert sorted((t["id"], t["status"], t["steps"]) for t in found["targets"]) == [
        (i, "succeeded", []) for i in ids]
    sfn = sandbox.sandbox.client("stepfunctions")
    assert sfn.describe_execution(executionArn=execution)["status"] == "SUCCEEDED"


def test_run_on_stepfunctions_needs_a_deployed_machine_or_a_role(
        sandbox: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli("run", REBOOT_FIRST, "--engine", "stepfunctions", "--yes", "--no-progress")

    assert code == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: no state machine ec2-reboot-first: deploy it first (`remediate deploy "
        f"{REBOOT_FIRST} --role-arn ARN`), or pass --role-arn")
    assert sandbox.mutating_calls() == []


def test_run_on_stepfunctions_refuses_a_machine_deployed_with_other_parameters(
        sandbox: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("deploy", REBOOT_FIRST, "--role-arn", ROLE, "--param", "max_reboots=1") == 0
    capsys.readouterr()

    code = run_cli("run", REBOOT_FIRST, "--engine", "stepfunctions", "--yes", "--no-progress")

    assert code == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: state machine ec2-reboot-first does not run this playbook with these --param, "
        "--accept, --target-role-arn and --items-bucket values: deploy it again (`remediate "
        f"deploy {REBOOT_FIRST} --role-arn ARN`), or pass --role-arn")


def test_run_on_stepfunctions_of_a_playbook_that_does_not_export_fails_before_aws(
        sandbox: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    playbook = tmp_path / "own-state-name.yaml"
    playbook.write_text(OWN_STATE_NAME, encoding="utf-8")

    code = run_cli("run", str(playbook), "--engine", "stepfunctions", "--yes")

    assert code == 1
    assert capsys.readouterr().err == f"error: {OWN_STATE_NAME_ERROR}\n"
    assert sandbox.sandbox.api_calls == []


# ---- resume EXECUTION_ARN: redrive ----------------------------------------------------------


def iteration(cli: CliSandbox, path: str = REBOOT_FIRST, **params: str) -> str:
    """A built-in playbook's exported Map iteration as a state machine: its execution's
    outcome is one target's (moto hides a Distributed Map's child executions)."""
    loaded = load_file(path)
    assert loaded.playbook is not None
    bound, errors = bind_params(loaded.playbook, params)
    assert not errors
    processor = dict(compile_playbook(loaded.playbook, bound)["States"]["targets"][
        "ItemProcessor"])
    processor.pop("ProcessorConfig")
    sfn = cli.sandbox.client("stepfunctions")
    return str(sfn.create_state_machine(name=f"{loaded.playbook.name}-iteration", roleArn=ROLE,
                                        definition=json.dumps(processor))["stateMachineArn"])


def start_on(cli: CliSandbox, machine: str, instance_id: str) -> str:
    document = {"target": {"id": instance_id, "region": "us-east-1", "account": "123456789012"},
                "run": {"id": f"r-{instance_id}"}}
    return str(cli.sandbox.client("stepfunctions").start_execution(
        stateMachineArn=machine, name=f"r-{instance_id}",
        input=json.dumps(document))["executionArn"])


def end_state(cli: CliSandbox, instance_id: str) -> tuple[object, ...]:
    root = root_state(cli.ec2, instance_id)
    return (root.state, root.volume_id, cli.sandbox.channel_file_present(root.volume_id),
            status_ok(cli.ec2, instance_id))


def test_resume_redrives_a_failed_execution_to_the_end_state_of_a_clean_run(
        with_engine: tuple[CliSandbox, MotoStepFunctions],
        capsys: pytest.CaptureFixture[str]) -> None:
    cli, engine = with_engine
    broken, clean = sorted(cli.fleet.instance_ids())[:2]
    before = root_state(cli.ec2, broken)
    machine = iteration(cli)
    sfn = cli.sandbox.client("stepfunctions")
    cli.sandbox.fail("RebootInstances", "UnauthorizedOperation",
                     "You are not authorized to perform this operation.")
    arn = start_on(cli, machine, broken)
    assert engine.join(timeout=60)
    failed = sfn.describe_execution(executionArn=arn)
    assert (failed["status"], failed["error"]) == ("FAILED", "remediate.Failed")
    assert failed["cause"].startswith(
        f"step reboot failed: RebootInstances for {broken} failed: You are not authorized to "
        "perform this operation.")
    assert (failed["redriveStatus"], failed["redriveCount"]) == ("REDRIVABLE", 0)
    assert "redriveDate" not in failed
    assert not status_ok(cli.ec2, broken)
    cli.sandbox.clear_faults()
    capsys.readouterr()

    code = run_cli("resume", arn)

    err = capsys.readouterr().err
    assert code == 0, err
    assert err.startswith(f"redriven {arn} at ")
    assert err.endswith(f"; following it\nexecution {arn} succeeded\n")
    found = sfn.describe_execution(executionArn=arn)
    assert (found["status"], found["redriveCount"], found["redriveStatus"],
            found["redriveStatusReason"]) == (
        "SUCCEEDED", 1, "NOT_REDRIVABLE", "Execution is SUCCEEDED and cannot be redriven")
    assert found["startDate"] == failed["startDate"] < found["redriveDate"]
    assert "error" not in found and "cause" not in found
    # The sandbox re-runs the fragment from its start (AWS: from the failed state): it
    # reaches the end state of a run that never failed.
    assert engine.join(timeout=60)
    assert end_state(cli, broken) == ("running", before.volume_id, False, True)
    clean_arn = start_on(cli, machine, clean)
    assert engine.join(timeout=60)
    assert sfn.describe_execution(executionArn=clean_arn)["status"] == "SUCCEEDED"
    assert end_state(cli, clean) == ("running", root_state(cli.ec2, clean).volume_id, False,
                                     True)
    assert root_state(cli.ec2, broken) == before


def test_resume_reruns_a_rolled_back_offline_repair_from_its_start_to_a_fixed_target(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # The first attempt changes the target (backup, stop, root on a rescue instance),
    # fails at the repair and rolls back: the run from the start must cope with that.
    with cli_sandbox(monkeypatch, FleetSpec(plain=1)) as cli, \
            MotoStepFunctions(cli.clock) as engine:
        target = cli.fleet.instance_ids()[0]
        before = root_state(cli.ec2, target)
        machine = iteration(cli, OFFLINE_REPAIR, rescue_image_id=cli.rescue_param[1].split(
            "=", 1)[1])
        sfn = cli.sandbox.client("stepfunctions")
        cli.sandbox.fail("SendCommand", "AccessDeniedException", "not allowed")
        arn = start_on(cli, machine, target)
        assert engine.join(timeout=60)
        failed = sfn.describe_execution(executionArn=arn)
        assert (failed["status"], failed["error"]) == ("FAILED", "remediate.RolledBack")
        assert len(backups(cli.ec2, target)) == 1
        assert rescue_instances(cli.ec2) == []
        assert cli.sandbox.channel_file_present(before.volume_id)
        cli.sandbox.clear_faults()
        capsys.readouterr()

        code = run_cli("resume", arn)

        err = capsys.readouterr().err
        assert code == 0, err
        assert err.endswith(f"; following it\nexecution {arn} succeeded\n")
        assert engine.join(timeout=60)
        assert end_state(cli, target) == ("running", before.volume_id, False, True)
        assert root_state(cli.ec2, target) == before
        assert rescue_instances(cli.ec2) == []
        # Run again from its start, the backup step finds the first attempt's snapshot
        # (same run id) and reuses it: no second backup, as if resumed at the repair.
        assert len(backups(cli.ec2, target)) == 1


def test_resume_of_an_execution_that_fails_again_reports_it_and_exits_2(
        with_engine: tuple[CliSandbox, MotoStepFunctions],
        capsys: pytest.CaptureFixture[str]) -> None:
    cli, engine = with_engine
    arn = execution(cli, engine, {"StartAt": "broken", "States": {
        "broken": {"Type": "Fail", "Error": "remediate.Failed", "Cause": "verify failed"}}})

    code = run_cli("resume", arn)

    assert code == 2
    assert capsys.readouterr().err.endswith(
        f"; following it\nexecution {arn} ended FAILED: remediate.Failed: verify failed\n")
    found = cli.sandbox.client("stepfunctions").describe_execution(executionArn=arn)
    assert (found["status"], found["redriveCount"], found["redriveStatus"]) == (
        "FAILED", 1, "REDRIVABLE")


def test_step_functions_refuses_to_redrive_a_succeeded_or_missing_execution(
        with_engine: tuple[CliSandbox, MotoStepFunctions]) -> None:
    cli, engine = with_engine
    arn = execution(cli, engine, {"StartAt": "fine", "States": {"fine": {"Type": "Succeed"}}})
    sfn = cli.sandbox.client("stepfunctions")

    with pytest.raises(ClientError) as refused:
        sfn.redrive_execution(executionArn=arn)
    missing = arn.replace(":first", ":second")
    with pytest.raises(ClientError) as unknown:
        sfn.redrive_execution(executionArn=missing)

    assert refused.value.response["Error"]["Code"] == "ExecutionNotRedrivable"
    assert str(refused.value) == (
        "An error occurred (ExecutionNotRedrivable) when calling the RedriveExecution "
        "operation: Execution is SUCCEEDED and cannot be redriven")
    assert str(unknown.value) == (
        "An error occurred (ExecutionDoesNotExist) when calling the RedriveExecution "
        f"operation: Execution Does Not Exist: '{missing}'")
    found = sfn.describe_execution(executionArn=arn)
    assert (found["status"], found["redriveCount"]) == ("SUCCEEDED", 0)


def test_resume_refuses_to_redrive_an_execution_that_did_not_fail(
        with_engine: tuple[CliSandbox, MotoStepFunctions],
        capsys: pytest.CaptureFixture[str]) -> None:
    cli, engine = with_engine
    arn = execution(cli, engine, {"StartAt": "fine", "States": {"fine": {"Type": "Succeed"}}})

    assert run_cli("resume", arn) == 1
    assert capsys.readouterr().err == (
        f"error: execution {arn} is SUCCEEDED: only a failed, timed out or aborted execution "
        "can be redriven\n")
    missing = arn.replace(":first", ":second")
    assert run_cli("resume", missing) == 1
    assert capsys.readouterr().err == (
        f"error: execution {missing}: ExecutionDoesNotExist: Execution Does Not Exist: "
        f"'{missing}'\n")


def test_run_on_stepfunctions_with_a_lock_table_leaves_out_a_target_another_run_holds(
        sandbox: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = sorted(sandbox.fleet.instance_ids())
    dynamodb = sandbox.sandbox.client("dynamodb")
    other = LeaseTable(dynamodb, "leases", owner=Owner("r-other", "laptop-b", 4242),
                       clock=sandbox.clock)
    assert other.acquire([f"123456789012/us-east-1/{ids[0]}"]).granted
    report = tmp_path / "run.json"

    code = run_cli("run", REBOOT_FIRST, "--engine", "stepfunctions", "--role-arn", ROLE,
                   "--lock-table", "leases", "--yes", "--no-progress",
                   "--report", f"json:{report}")

    assert code == 2, capsys.readouterr().err
    statuses = {t["id"]: (t["status"], t["error"]) for t in json_file(report)["targets"]}
    assert statuses == {
        ids[0]: ("refused", f"default/us-east-1/{ids[0]} is locked by run r-other (pid 4242 on "
                            "laptop-b, started 2024-07-19T05:30:00+00:00) (lock table leases)"),
        ids[1]: ("succeeded", None), ids[2]: ("succeeded", None)}
    assert not status_ok(sandbox.ec2, ids[0])  # never started on Step Functions
    assert all(status_ok(sandbox.ec2, i) for i in ids[1:])
    # Its own leases released; the other run's kept.
    assert [i["pk"]["S"] for i in dynamodb.scan(TableName="leases")["Items"]] == [
        f"123456789012/us-east-1/{ids[0]}"]


class _Terminal(io.StringIO):
    """Keyboard input at a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("answer", ["y", "n"])
def test_run_on_stepfunctions_asks_after_the_canary_execution(
        sandbox: CliSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, answer: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    point_commands_at(monkeypatch, sandbox.clock, sandbox.sandbox.boto3_session(),
                      interactive=True)
    monkeypatch.setattr(sys, "stdin", _Terminal(f"y\n{answer}\n"))
    canary, *rest = sorted(sandbox.fleet.instance_ids())  # batches: in (account, Region, id)
    report = tmp_path / "run.json"

    code = run_cli("run", REBOOT_FIRST, "--engine", "stepfunctions", "--role-arn", ROLE,
                   "--no-progress", "--report", f"json:{report}")

    err = capsys.readouterr().err
    assert code == 0, err
    found = json_file(report)
    run_id = found["run_id"]
    assert ("canary batch done (1 target): 1 succeeded, 0 failed, 0 rolled back, 0 refused; "
            "failure budget: 0 failed, 3 allowed; 2 targets to go\n") in err
    assert "Go on with the remaining targets? [y/N]: " in err
    executions = [e["name"] for e in sandbox.sandbox.client("stepfunctions").list_executions(
        stateMachineArn=MACHINE)["executions"]]
    statuses = {t["id"]: (t["status"], t["error"]) for t in found["targets"]}
    if answer == "y":
        assert sorted(executions) == [run_id, f"{run_id}-rest"]
        assert statuses == dict.fromkeys([canary, *rest], ("succeeded", None))
        assert all(status_ok(sandbox.ec2, i) for i in [canary, *rest])
    else:
        assert executions == [run_id]
        assert statuses == {canary: ("succeeded", None), **dict.fromkeys(
            rest, ("skipped", "not confirmed after the canary batch"))}
        assert [status_ok(sandbox.ec2, i) for i in [canary, *rest]] == [True, False, False]
