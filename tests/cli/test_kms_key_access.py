"""Encrypted roots whose KMS key the operator may not use, judged before anything stops.

Attaching an encrypted root volume to a rescue instance makes EC2 ask KMS, with the
operator's credentials, for a grant and Decrypt. Where the key policy allows neither
(nor delegates to IAM) and no grant does, the attach would fail and the volume fall back
to ``available``: ``plan`` (exit 2), ``run`` and ``run --engine stepfunctions`` refuse
those targets before their stop, with the key policy statement to add. A key policy that
cannot be read is a warning, not a refusal. Each key is read once per account and
Region, however many targets share it. On Step Functions the machine attaches, as its
execution role or the target role: the key is judged for that role, not the operator.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from cli_support import (
    OFFLINE_REPAIR,
    CliSandbox,
    backups,
    cli_sandbox,
    repair_problems,
    rescue_instances,
    root_states,
    run_cli,
)
from remediate.clock import ScaledClock, VirtualClock
from remediate.sandbox import FleetSpec

ACCOUNT = "123456789012"
OPERATOR = f"arn:aws:sts::{ACCOUNT}:user/moto"  # moto's identity for the sandbox's credentials
ADMIN_ONLY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/key-admin"},
    "Action": "kms:*", "Resource": "*"}]})
HINT = ("(hint: add the key policy statement the detail gives (aws kms put-key-policy), or a "
        "grant of CreateGrant and Decrypt (aws kms create-grant))")
FLEET = FleetSpec(plain=2, encrypted=3, azs=1)


def key_of(cli: CliSandbox) -> str:
    return cli.fleet.regions["us-east-1"].kms_key_id


# Roles with paths: a key policy names a role by its ARN, path included.
ROLE = f"arn:aws:iam::{ACCOUNT}:role/service-role/remediate-sfn"
TARGET_ROLE = f"arn:aws:iam::{ACCOUNT}:role/remediate/targets"
MACHINE_ROLE = f"the state machine's role {ROLE}"


def allowing(*principals: str) -> str:
    """A key policy letting the key admin manage the key and ``principals`` attach volumes
    encrypted with it through EC2."""
    document = json.loads(ADMIN_ONLY)
    document["Statement"].append({
        "Effect": "Allow", "Principal": {"AWS": list(principals)},
        "Action": ["kms:CreateGrant", "kms:Decrypt"], "Resource": "*",
        "Condition": {"StringEquals": {"kms:ViaService": "ec2.us-east-1.amazonaws.com"}}})
    return json.dumps(document)


def denial(cli: CliSandbox, volume: str, instance: str, principal: str = OPERATOR,
           who: str = OPERATOR) -> str:
    return (
        f"blocked by kms-key-denied: root volume {volume} of {instance} is encrypted with KMS "
        f"key {key_of(cli)}, which {who} may not use through EC2 (kms:CreateGrant, "
        "kms:Decrypt: no statement of the key policy allows it, and no grant does), so it "
        "could not be attached to a rescue instance: add to the key policy (aws kms "
        f'put-key-policy): {{"Effect": "Allow", "Principal": {{"AWS": "{principal}"}}, '
        '"Action": ["kms:CreateGrant", "kms:Decrypt"], "Resource": "*", "Condition": '
        '{"StringEquals": {"kms:ViaService": "ec2.us-east-1.amazonaws.com"}}} ' + HINT)


@contextmanager
def denying(monkeypatch: pytest.MonkeyPatch, spec: FleetSpec = FLEET,
            clock: Any = None, policy: str = ADMIN_ONLY) -> Iterator[CliSandbox]:
    """The sandbox with ``spec``'s fleet, its encrypted roots' key with ``policy`` (default:
    allowing a key admin only)."""
    with cli_sandbox(monkeypatch, spec, clock=clock) as cli:
        cli.sandbox.client("kms").put_key_policy(KeyId=key_of(cli), PolicyName="default",
                                                 Policy=policy)
        yield cli


@pytest.fixture
def denied(monkeypatch: pytest.MonkeyPatch) -> Iterator[CliSandbox]:
    with denying(monkeypatch) as cli:
        yield cli


def reads(cli: CliSandbox) -> Counter[str]:
    return Counter(c.operation for c in cli.sandbox.api_calls
                   if c.service in ("kms", "sts") and c.operation != "PutKeyPolicy")


def stopped_ids(cli: CliSandbox) -> set[str]:
    """Every instance a StopInstances call named (EC2's query protocol, as moto parsed it)."""
    return {value for c in cli.sandbox.api_calls if c.operation == "StopInstances"
            and not c.dry_run for name, values in c.request.items()
            if name.startswith("InstanceId.") for value in values}


def test_plan_refuses_exactly_the_targets_whose_key_denies_the_operator(
        denied: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    encrypted = denied.fleet.by_kind("encrypted")

    code = run_cli("plan", OFFLINE_REPAIR)
    out = capsys.readouterr().out
    assert run_cli("plan", OFFLINE_REPAIR, "--format", "json") == 2
    report = json.loads(capsys.readouterr().out)

    assert code == 2
    assert "\n5 targets: 2 would be worked on, 3 refused; estimated " in out
    assert f"      {denial(denied, '<id>', '<id>')}\n" in out
    assert f"      3 x kms-key-denied [block] {HINT}\n" in out
    refused = {t["id"]: t["status"] for t in report["targets"]
               if any(f["kind"] == "kms-key-denied" for f in t["findings"])}
    assert refused == {t.instance_id: "refused" for t in encrypted}
    # One key shared by three targets, over two dry runs: read once per run.
    assert reads(denied) == {"DescribeKey": 2, "GetCallerIdentity": 2, "GetKeyPolicy": 2,
                             "ListGrants": 2}
    assert [c for c in denied.mutating_calls() if c != "PutKeyPolicy"] == []


@pytest.mark.parametrize("clock", [VirtualClock, lambda: ScaledClock(100.0)],
                         ids=["virtual", "moving"])
def test_the_run_never_stops_them_and_repairs_the_rest(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        clock: Any) -> None:
    with denying(monkeypatch, clock=clock()) as cli:
        encrypted = cli.fleet.by_kind("encrypted")
        ids = cli.fleet.instance_ids()
        before = root_states(cli.ec2, ids)

        code = run_cli("run", OFFLINE_REPAIR, "--yes", "--no-progress",
                       "--journal", str(tmp_path / "j.sqlite"))

        err = capsys.readouterr().err
        assert code == 2, err
        for target in encrypted:
            line = (f"{target.instance_id} (us-east-1): refused: "
                    f"{denial(cli, target.root_volume_id, target.instance_id)}\n")
            assert err.count(line) == 1, err
            assert root_states(cli.ec2, [target.instance_id]) == {
                target.instance_id: before[target.instance_id]}
            assert backups(cli.ec2, target.instance_id) == []
        assert stopped_ids(cli) == set(cli.fleet.instance_ids("plain"))
        for instance_id in cli.fleet.instance_ids("plain"):
            assert repair_problems(cli.ec2, before[instance_id]) == []
        assert rescue_instances(cli.ec2) == []
        assert reads(cli)["GetKeyPolicy"] == 1


def test_an_unreadable_key_policy_is_a_warning_and_the_run_proceeds(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    with cli_sandbox(monkeypatch, FLEET) as cli:
        cli.sandbox.fail("GetKeyPolicy", "AccessDeniedException",
                         "User is not authorized to perform: kms:GetKeyPolicy")
        ids = cli.fleet.instance_ids()
        before = root_states(cli.ec2, ids)
        assert run_cli("plan", OFFLINE_REPAIR, "--format", "json") == 0
        report = json.loads(capsys.readouterr().out)

        code = run_cli("run", OFFLINE_REPAIR, "--yes", "--no-progress",
                       "--journal", str(tmp_path / "j.sqlite"))

        err = capsys.readouterr().err
        assert code == 0, err
        for instance_id in ids:
            assert repair_problems(cli.ec2, before[instance_id]) == []
        assert rescue_instances(cli.ec2) == []

    detail = (f"could not check that {OPERATOR} may use KMS key {key_of(cli)} through EC2 "
              "(kms:CreateGrant, kms:Decrypt): GetKeyPolicy was refused: grant "
              "kms:GetKeyPolicy and kms:ListGrants on arn:aws:kms:us-east-1:*:key/*")
    found = {t["id"]: [f for f in t["findings"] if f["kind"].startswith("kms-")]
             for t in report["targets"]}
    assert found == {
        **{i: [] for i in cli.fleet.instance_ids("plain")},
        **{i: [{"kind": "kms-key-unchecked", "severity": "info", "detail": detail}]
           for i in cli.fleet.instance_ids("encrypted")}}


def executions(cli: CliSandbox) -> list[str]:
    sfn = cli.sandbox.client("stepfunctions")
    return [e["executionArn"] for m in sfn.list_state_machines()["stateMachines"]
            for e in sfn.list_executions(stateMachineArn=m["stateMachineArn"])["executions"]]


@contextmanager
def on_step_functions(monkeypatch: pytest.MonkeyPatch, policy: str,
                      clock: Any = None) -> Iterator[CliSandbox]:
    """Two encrypted targets whose key has ``policy``, and moto running state machines."""
    from remediate.export.moto_engine import MotoStepFunctions

    with denying(monkeypatch, FleetSpec(plain=0, encrypted=2, azs=1), clock=clock,
                 policy=policy) as cli, MotoStepFunctions(cli.clock):
        yield cli


def plan_then_run(cli: CliSandbox, capsys: pytest.CaptureFixture[str], report: Path,
                  planned: int, *machine: str) -> tuple[int, str]:
    """``plan`` (locally: the operator attaches), which exits ``planned``; then the run on
    Step Functions with ``machine``'s options: its exit code and stderr."""
    assert run_cli("plan", OFFLINE_REPAIR) == planned
    capsys.readouterr()
    code = run_cli("run", OFFLINE_REPAIR, "--engine", "stepfunctions", *machine, "--yes",
                   "--no-progress", "--report", f"json:{report}")
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("machine", "policy", "who", "principal"), [
    (("--role-arn", ROLE), allowing(OPERATOR), MACHINE_ROLE, ROLE),
    ((), allowing(OPERATOR), MACHINE_ROLE, ROLE),  # deployed: its roleArn
    (("--role-arn", ROLE, "--target-role-arn", TARGET_ROLE), allowing(OPERATOR, ROLE),
     f"the target role {TARGET_ROLE}", TARGET_ROLE),
], ids=["role-arn", "deployed", "target-role"])
def test_on_step_functions_a_key_the_machine_may_not_use_refuses_them_before_any_execution(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        machine: tuple[str, ...], policy: str, who: str, principal: str) -> None:
    """The key allows the operator, not the role the machine attaches volumes as."""
    with on_step_functions(monkeypatch, policy) as cli:
        if not machine:
            assert run_cli("deploy", OFFLINE_REPAIR, "--role-arn", ROLE) == 0
        encrypted = cli.fleet.by_kind("encrypted")
        before = root_states(cli.ec2, cli.fleet.instance_ids())

        code, err = plan_then_run(cli, capsys, tmp_path / "run.json", 0, *machine)

        assert code == 2, err
        statuses = {t["id"]: (t["status"], t["error"])
                    for t in json.loads((tmp_path / "run.json").read_text())["targets"]}
        assert statuses == {t.instance_id: (
            "refused", denial(cli, t.root_volume_id, t.instance_id, principal, who))
            for t in encrypted}
        assert root_states(cli.ec2, cli.fleet.instance_ids()) == before
        assert stopped_ids(cli) == set()
        assert executions(cli) == []


def test_on_step_functions_a_key_only_the_machine_may_use_is_not_refused_and_attaches(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The reverse: the key denies the operator and allows the machine's role. The sandbox
    signs the machine's calls as its role, so its AttachVolume passes EBS's KMS check."""
    with on_step_functions(monkeypatch, allowing(ROLE), clock=ScaledClock(100.0)) as cli:
        ids = cli.fleet.instance_ids()
        before = root_states(cli.ec2, ids)

        code, err = plan_then_run(cli, capsys, tmp_path / "run.json", 2, "--role-arn", ROLE)

        assert code == 0, err
        found = json.loads((tmp_path / "run.json").read_text())["targets"]
        assert {t["id"]: (t["status"], t["error"]) for t in found} == {
            i: ("succeeded", None) for i in ids}
        assert [f for t in found for f in t["findings"] if f["kind"].startswith("kms-")] == []
        for instance_id in ids:
            assert repair_problems(cli.ec2, before[instance_id]) == []
        assert rescue_instances(cli.ec2) == []
        assert len(executions(cli)) == 1
