"""`export`, `deploy`, `run --engine stepfunctions` and `resume EXECUTION_ARN` options: the
batches in S3 past the execution input's limit, warnings for what does not export, the
target-account role, and options a redrive would ignore."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from policy_parts import DENY

from cli_support import (
    OFFLINE_REPAIR,
    REBOOT_FIRST,
    CliSandbox,
    cli_sandbox,
    json_file,
    run_cli,
    status_ok,
)
from remediate.actions.contract import Target
from remediate.export import run_input
from remediate.export.dropped import FINDINGS, dropped
from remediate.export.moto_engine import MotoStepFunctions
from remediate.export.run_input import cut_batches
from remediate.language.loader import load_file
from remediate.language.model import BatchSize
from remediate.sandbox import FleetSpec

ROLE = "arn:aws:iam::123456789012:role/remediate-sfn"
TARGET_ROLE = "arn:aws:iam::123456789012:role/remediate-targets"
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:ec2-reboot-first"
RUN_ID = r"r\d{8}-\d{6}-[0-9a-f]{6}"
TIMED = """\
version: 1
name: timed
description: Steps with timeouts and client-side rate limits.
targets:
  kind: ec2-instance
  tags: {incident: crowdstrike-2024-07-19}
steps:
  - id: reboot
    action: ec2.reboot
    timeout: 20m
  - id: verify
    action: ec2.verify_status
    timeout: 10m
execution:
  rate_limits:
    ec2.mutating: {burst: 20, rate: 2}
"""
TIMEOUTS = ("step timeouts do not export (steps reboot, verify): on Step Functions a step "
            "ends only when its own waits give up")
RATE_LIMITS = ("client-side rate limits do not export (execution.rate_limits, --rate-limit): "
               "Step Functions paces no call; throttled calls are retried")


@pytest.fixture
def three(monkeypatch: pytest.MonkeyPatch) -> Iterator[CliSandbox]:
    with cli_sandbox(monkeypatch, FleetSpec(plain=0, reboot_fixable=3, azs=2)) as cli, \
            MotoStepFunctions(cli.clock):
        yield cli


@pytest.fixture
def timed(tmp_path: Path) -> str:
    path = tmp_path / "timed.yaml"
    path.write_text(TIMED, encoding="utf-8")
    return str(path)


# ---- more targets than an execution's input holds -------------------------------------------


def test_more_targets_than_an_input_holds_fail_before_the_preflight_and_the_deploy(
        three: CliSandbox, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(run_input, "MAX_INPUT_BYTES", 200)  # 3 targets stand for 3,700

    code = run_cli("run", REBOOT_FIRST, "--engine", "stepfunctions", "--role-arn", ROLE,
                   "--yes", "--no-progress")

    # Before: exit 3, after the pre-flight had inspected every target and the deploy ran.
    assert code == 1
    assert re.fullmatch(
        r"error: 3 targets make a \d{3}-byte execution input; AWS takes at most 200 bytes: "
        r"pass --items-bucket BUCKET \(the batches are then read from S3\), or select fewer "
        r"targets\n", capsys.readouterr().err)
    assert {(c.service, c.operation) for c in three.sandbox.api_calls} == {
        ("ec2", "DescribeInstances")}  # discovery only


def test_with_an_items_bucket_each_batch_is_read_from_s3(
        three: CliSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # The targets' input would take ~250 bytes; the one naming their S3 keys takes 204.
    monkeypatch.setattr(run_input, "MAX_INPUT_BYTES", 210)
    s3 = three.sandbox.client("s3")
    s3.create_bucket(Bucket="items")
    ids = sorted(three.fleet.instance_ids())
    report = tmp_path / "run.json"

    # Three batches of one (the shipped playbook's are [1, 100%]).
    playbook = tmp_path / "reboot-first.yaml"
    playbook.write_text(Path(REBOOT_FIRST).read_text(encoding="utf-8").replace(
        "batches: [1, 100%]", "batches: [1, 1, 1]"), encoding="utf-8")
    code = run_cli("run", str(playbook), "--engine", "stepfunctions", "--role-arn", ROLE,
                   "--items-bucket", "items", "--yes", "--no-progress",
                   "--report", f"json:{report}")

    err = capsys.readouterr().err
    assert code == 0, err
    run_id = json_file(report)["run_id"]
    keys = [f"remediate/{run_id}/batch-000{n}.json" for n in (1, 2, 3)]  # batches 1, 1, 1
    assert f"run {run_id}: 3 batches of targets in s3://items/remediate/{run_id}/\n" in err
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="items")["Contents"]] == keys
    assert [json.loads(s3.get_object(Bucket="items", Key=k)["Body"].read()) for k in keys] == [
        [{"id": i, "region": "us-east-1", "account": "default"}] for i in ids]
    sfn = three.sandbox.client("stepfunctions")
    execution = sfn.describe_execution(executionArn=MACHINE.replace(
        ":stateMachine:", ":execution:") + f":{run_id}")
    assert json.loads(execution["input"]) == {"run_id": run_id, "batches": keys}
    definition = json.loads(sfn.describe_state_machine(stateMachineArn=MACHINE)["definition"])
    assert definition["States"]["targets"]["ItemReader"] == {
        "Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON"},
        "Parameters": {"Bucket": "items", "Key.$": "$.batch.key"}}
    assert [t["status"] for t in json_file(report)["targets"]] == ["succeeded"] * 3
    assert all(status_ok(three.ec2, i) for i in ids)


def test_an_items_bucket_that_cannot_be_reached_fails_before_the_preflight(
        three: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli("run", REBOOT_FIRST, "--engine", "stepfunctions", "--role-arn", ROLE,
                   "--items-bucket", "nowhere", "--yes", "--no-progress")

    assert code == 1
    assert capsys.readouterr().err == "error: --items-bucket nowhere: 404: Not Found\n"
    assert three.mutating_calls() == []


def test_deploy_with_an_items_bucket_lets_the_role_read_the_batches(
        three: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("deploy", REBOOT_FIRST, "--role-arn", ROLE, "--items-bucket", "items") == 0

    policy = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert policy["Statement"][-2:] == [
        {"Sid": "RemediateItemReader", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": ["arn:aws:s3:::items/remediate/*"]},
        DENY]


# ---- what does not export --------------------------------------------------------------------


def test_export_warns_once_for_each_feature_that_does_not_export(
        timed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "timed.json"

    assert run_cli("export", timed, "-o", str(out)) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[:4] == [f"warning: {TIMEOUTS}", f"warning: {RATE_LIMITS}",
                       f"warning: {FINDINGS}", f"wrote {out}"]

    assert run_cli("export", OFFLINE_REPAIR, "--param", "rescue_image_id=ami-0123456789abcdef0",
                   "-o", str(out)) == 0
    assert capsys.readouterr().err.splitlines()[:3] == [
        "warning: the failure budget (guards.max_failure_percent: 10%) counts per batch on "
        "Step Functions (each Map Run alone), not over the whole run",
        "warning: the rescue pool does not export: on Step Functions each target launches a "
        "rescue instance of its own (max_per_az and volumes_per_instance do not apply)",
        f"warning: {FINDINGS}"]


def test_run_on_stepfunctions_warns_too_but_judges_findings_itself(
        three: CliSandbox, timed: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli("run", timed, "--engine", "stepfunctions", "--yes", "--no-progress")

    assert code == 1  # no machine deployed
    err = capsys.readouterr().err.splitlines()
    assert err[:2] == [f"warning: {TIMEOUTS}", f"warning: {RATE_LIMITS}"]
    assert not any(FINDINGS in line for line in err)
    assert err[-1] == (f"error: no state machine timed: deploy it first (`remediate deploy "
                       f"{timed} --role-arn ARN`), or pass --role-arn")


def test_a_ramp_with_caps_runs_as_batches_on_step_functions_and_says_so() -> None:
    playbook = load_file(Path(OFFLINE_REPAIR)).playbook  # [1, 100%]: nothing to cap
    assert playbook is not None and playbook.guards.rollout == "ramp"
    capped = replace(playbook, guards=replace(playbook.guards, batches=(
        BatchSize(count=1), BatchSize(percent=25), BatchSize(percent=100))))
    ramp = ("the ramp (guards.rollout: ramp) does not export: on Step Functions the batches "
            "after the canary are barriers, each Map Run starting when the previous one has "
            "ended (as with rollout: batches)")

    assert ramp not in dropped(playbook) and dropped(capped)[0] == ramp
    assert [len(b) for b in cut_batches(capped, [Target("ec2-instance", f"i-{n}", "us-east-1")
                                                 for n in range(40)])] == [1, 10, 29]


def test_the_readme_lists_what_does_not_export() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = " ".join(readme.split("**What does not export**", 1)[1].split("\n\n", 1)[0]
                       .split())
    for named in ("step `timeout`s", "`execution.rate_limits`", "per batch", "rescue pool",
                  "pre-flight findings", "`rollout: ramp`"):
        assert named in section, named


# ---- the target-account role -----------------------------------------------------------------


def test_run_uses_a_machine_deployed_with_a_target_role_only_with_that_role(
        three: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("deploy", REBOOT_FIRST, "--role-arn", ROLE,
                   "--target-role-arn", TARGET_ROLE) == 0
    out = capsys.readouterr().out
    assert {"Sid": "RemediateAssumeTargetRole", "Effect": "Allow", "Action": ["sts:AssumeRole"],
            "Resource": [TARGET_ROLE]} in json.loads(out.split("\n", 1)[1])["Statement"]
    sfn = three.sandbox.client("stepfunctions")
    definition = sfn.describe_state_machine(stateMachineArn=MACHINE)["definition"]
    assert f'"Credentials":{{"RoleArn":"{TARGET_ROLE}"}}' in definition

    refused = run_cli("run", REBOOT_FIRST, "--engine", "stepfunctions", "--yes",
                      "--no-progress")
    assert refused == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: state machine ec2-reboot-first does not run this playbook with these --param, "
        "--accept, --target-role-arn and --items-bucket values: deploy it again (`remediate "
        f"deploy {REBOOT_FIRST} --role-arn ARN`), or pass --role-arn")

    code = run_cli("run", REBOOT_FIRST, "--engine", "stepfunctions", "--target-role-arn",
                   TARGET_ROLE, "--yes", "--no-progress")
    assert code == 0, capsys.readouterr().err
    assert all(status_ok(three.ec2, i) for i in three.fleet.instance_ids())


def test_the_target_role_and_items_bucket_are_for_step_functions_only(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("run", REBOOT_FIRST, "--items-bucket", "items", "--yes") == 1
    assert capsys.readouterr().err == (
        "error: --target-role-arn and --items-bucket are for --engine stepfunctions\n")


# ---- resume EXECUTION_ARN --------------------------------------------------------------------


def test_resume_of_an_execution_refuses_the_options_it_would_ignore(
        capsys: pytest.CaptureFixture[str]) -> None:
    arn = "arn:aws:states:us-east-1:123456789012:execution:ec2-reboot-first:r1"

    code = run_cli("resume", arn, "--lock-table", "leases", "--report", "json:run.json",
                   "--no-progress")

    assert code == 1
    assert capsys.readouterr().err == (
        "error: resume EXECUTION_ARN redrives the execution and follows its status only: "
        "--report, --progress/--no-progress, --lock-table are for resuming a journal\n")
