"""`remediate readiness`: a sandbox fleet with each problem planted once reports each once,
with its fix (exit 2); a ready fleet exits 0; bad input is one line, exit 1, no AWS call;
every output format parses."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_support import OFFLINE_REPAIR, REBOOT_FIRST, CliSandbox, cli_sandbox, moving_clock, run_cli
from remediate.clock import Clock, VirtualClock
from remediate.language.loader import load_file
from remediate.permissions import policy_document
from remediate.sandbox import FleetSpec
from remediate.sandbox.fleet import INCIDENT_TAG

OTHER = "eu-west-1"
DAY = 24 * 3600


def snapshot(cli: CliSandbox, volumes: list[tuple[str, str]]) -> None:
    """A completed snapshot of each (Region, volume id), taken now."""
    for region, volume in volumes:
        cli.sandbox.client("ec2", region).create_snapshot(VolumeId=volume)
    while any(s["State"] != "completed" for region in cli.fleet.regions
              for s in cli.sandbox.client("ec2", region).describe_snapshots(
                  OwnerIds=["self"])["Snapshots"]):
        deadline = cli.sandbox.next_deadline()
        if isinstance(cli.clock, VirtualClock) and deadline is not None:
            cli.clock.advance(max(0.0, deadline - cli.clock.now()))
        else:
            cli.clock.sleep(5)


def snapshot_roots(cli: CliSandbox, instance_ids: list[str]) -> None:
    snapshot(cli, [(cli.fleet.target(i).region, cli.fleet.target(i).root_volume_id)
                   for i in instance_ids])


def launch_target(cli: CliSandbox, image_id: str, **ebs: Any) -> str:
    """One more broken Windows target of the incident, from ``image_id``."""
    setup = cli.fleet.regions["us-east-1"]
    response = cli.ec2.run_instances(
        ImageId=image_id, InstanceType="m5.large", MinCount=1, MaxCount=1,
        SubnetId=next(iter(setup.subnets.values())),
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1",
                              "Ebs": {"VolumeSize": 30, "VolumeType": "gp3", **ebs}}],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [
            {"Key": INCIDENT_TAG[0], "Value": INCIDENT_TAG[1]}]}])
    return str(response["Instances"][0]["InstanceId"])


def operator_role(cli: CliSandbox, playbook: str = OFFLINE_REPAIR,
                  without: str | None = None) -> str:
    """A role with the policy ``remediate iam-policy PLAYBOOK`` prints (less the action
    ``without``); its ARN."""
    loaded = load_file(playbook).playbook
    assert loaded is not None
    document = policy_document(loaded)
    for statement in document["Statement"]:
        statement["Action"] = [a for a in statement["Action"] if a != without]
    iam = cli.sandbox.client("iam")
    name = f"remediate-{len(iam.list_roles()['Roles'])}"
    arn = str(iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")["Role"]["Arn"])
    iam.put_role_policy(RoleName=name, PolicyName="remediate",
                        PolicyDocument=json.dumps(document))
    return arn


def owned_snapshots(cli: CliSandbox, region: str = "us-east-1") -> int:
    """The account's snapshots in ``region`` (its AMIs' among them)."""
    return len(cli.sandbox.client("ec2", region).describe_snapshots(OwnerIds=["self"])[
        "Snapshots"])


def root_of(cli: CliSandbox, instance_id: str) -> str:
    instance = cli.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0][
        "Instances"][0]
    return str(instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"])


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[CliSandbox, dict[str, str]]]:
    """Two Regions; each problem once: a rescue AMI only us-east-1 has (so it does not
    resolve in eu-west-1), a target running that AMI, a stale root snapshot, a KMS key
    pending deletion, a KMS key whose policy does not let the operator use it, a vCPU
    quota in eu-west-1 one short of its two targets (2 vCPUs each) and its one rescue
    instance, a snapshot quota in us-east-1 one short of a backup for each of its 4, an
    operator role allowed all the offline repair needs but ec2:StopInstances."""
    spec = FleetSpec(plain=3, encrypted_bad_key=1, azs=1, regions=("us-east-1", OTHER))
    with cli_sandbox(monkeypatch, spec) as cli:
        setup = cli.fleet.regions["us-east-1"]
        kms = cli.sandbox.client("kms")
        locked = kms.create_key(Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:role/keeper"},
            "Action": "kms:*", "Resource": "*"}]}))["KeyMetadata"]["Arn"]
        collider = launch_target(cli, setup.rescue_windows_ami)
        locked_target = launch_target(cli, setup.target_ami, Encrypted=True, KmsKeyId=locked)
        plain = [t.instance_id for t in cli.fleet.by_kind("plain")]
        stale = next(i for i in plain if cli.fleet.target(i).region == "us-east-1")
        snapshot_roots(cli, [stale])
        assert isinstance(cli.clock, VirtualClock)
        cli.clock.advance(DAY + 3600)
        snapshot_roots(cli, [t.instance_id for t in cli.fleet.targets if t.instance_id != stale])
        snapshot(cli, [("us-east-1", root_of(cli, extra)) for extra in (collider, locked_target)])
        cli.sandbox.set_quota("ec2", "L-1216C47A", 5, region=OTHER)
        cli.sandbox.set_quota("ebs", "L-309BACF6", owned_snapshots(cli) + 3)
        operator = operator_role(cli, without="ec2:StopInstances")
        cli.sandbox.reset_api_calls()
        yield cli, {"operator": operator, "collider": collider, "locked": locked,
                    "locked_target": locked_target, "stale": stale,
                    "rescue": setup.rescue_windows_ami}


def test_each_planted_problem_is_reported_once_with_its_fix(
        planted: tuple[CliSandbox, dict[str, str]], capsys: pytest.CaptureFixture[str]) -> None:
    cli, p = planted
    capsys.readouterr()
    code = run_cli("readiness", OFFLINE_REPAIR, "--param", f"rescue_image_id={p['rescue']}",
                   "--operator-arn", p["operator"],
                   "--region", "us-east-1", "--region", OTHER, "--format", "json")

    report = json.loads(capsys.readouterr().out)
    assert code == 2
    assert report["ready"] is False
    found = {(f["rule"], f["region"], f["resource"]): (f["message"], f["fix"])
             for f in report["findings"]}
    assert len(found) == len(report["findings"]) == 8
    stale_volume = cli.fleet.target(p["stale"]).root_volume_id
    bad_user = cli.fleet.by_kind("encrypted_bad_key")[0]
    bad_key = cli.fleet.regions[bad_user.region].bad_kms_key_id
    operator = p["operator"]
    owned = owned_snapshots(cli)
    assert found == {
        ("rescue-image-resolves", OTHER, p["rescue"]): (
            f"rescue image {p['rescue']} does not resolve in default/{OTHER}: AMI "
            f"{p['rescue']} does not exist",
            "set rescue_image_id to an available AMI of this Region, or to "
            "resolve:ssm:PARAMETER naming one in every Region (e.g. the default "
            "resolve:ssm:/aws/service/ami-windows-latest/Windows_Server-2022-English-Full-Base)"),
        ("rescue-image-differs", "us-east-1", p["collider"]): (
            f"{p['collider']} runs the rescue image {p['rescue']}: disk-signature collision",
            "set rescue_image_id to another Windows version than this target's (its AMI is "
            f"{p['rescue']}), e.g. Windows Server 2022 for 2019 targets"),
        ("root-snapshot-fresh", "us-east-1", p["stale"]): (
            f"root volume {stale_volume} of {p['stale']} has no snapshot newer than 24h "
            "(newest 25h old)",
            f"snapshot it now (aws ec2 create-snapshot --volume-id {stale_volume} --region "
            "us-east-1) and keep it fresh with an AWS Backup plan or a Data Lifecycle Manager "
            "policy"),
        ("kms-key-enabled", bad_user.region, bad_key): (
            f"KMS key {bad_key} of the root volumes of 1 target ({bad_user.instance_id}) "
            "is PendingDeletion",
            "enable it (aws kms enable-key), or cancel its deletion (aws kms "
            "cancel-key-deletion, then enable-key)"),
        ("kms-key-usable", "us-east-1", p["locked"]): (
            f"{operator} may not kms:CreateGrant or kms:Decrypt with KMS key {p['locked']} "
            f"(root volumes of 1 target ({p['locked_target']}))",
            f"allow {operator} kms:CreateGrant and kms:Decrypt in the key policy (aws kms "
            "put-key-policy) or with a grant (aws kms create-grant)"),
        ("vcpu-quota-headroom", OTHER, "ec2/L-1216C47A"): (
            "4 vCPUs running + 2 for 1 rescue instance(s) (m5.large) exceed the quota of 5",
            "ask for at least 6: aws service-quotas request-service-quota-increase "
            "--service-code ec2 --quota-code L-1216C47A --desired-value 6 --region eu-west-1 "
            "(or lower rescue_per_az)"),
        ("snapshot-quota-headroom", "us-east-1", "ebs/L-309BACF6"): (
            f"{owned} snapshots + 4 backups (one per target) exceed the quota of {owned + 3}",
            f"ask for at least {owned + 4}: aws service-quotas request-service-quota-increase "
            f"--service-code ebs --quota-code L-309BACF6 --desired-value {owned + 4} --region "
            "us-east-1"),
        # IAM is global: judged once per account, in its first Region.
        ("iam-policy-granted", OTHER, operator): (
            f"{operator} is not allowed 1 of what {OFFLINE_REPAIR} needs: ec2:StopInstances on "
            "arn:aws:ec2:*:*:instance/* (implicitDeny)",
            f"attach the policy `remediate iam-policy {OFFLINE_REPAIR}` prints to it (aws iam "
            "put-role-policy --policy-document file://policy.json ...)"),
    }
    # Every rule judged in both Regions (the KMS ones where a root volume is encrypted).
    judged = {(s["region"], rule): counts for s in report["scopes"]
              for rule, counts in s["rules"].items()}
    assert judged[("us-east-1", "root-snapshot-fresh")] == {"judged": 4, "failed": 1}
    assert (OTHER, "rescue-image-differs") not in judged  # unknown AMI: nothing to compare
    assert [c.operation for c in cli.sandbox.api_calls if c.mutating] == []


def test_a_grant_to_the_operator_makes_a_key_usable(
        planted: tuple[CliSandbox, dict[str, str]], capsys: pytest.CaptureFixture[str]) -> None:
    cli, p = planted
    cli.sandbox.client("kms").create_grant(
        KeyId=p["locked"], GranteePrincipal=p["operator"],
        Operations=["Decrypt", "CreateGrant"])
    capsys.readouterr()
    run_cli("readiness", OFFLINE_REPAIR, "--param", f"rescue_image_id={p['rescue']}",
                   "--operator-arn", p["operator"],
            "--region", "us-east-1", "--format", "json")

    rules = [f["rule"] for f in json.loads(capsys.readouterr().out)["findings"]]
    assert "kms-key-usable" not in rules
    assert sorted(rules) == ["iam-policy-granted", "rescue-image-differs",
                             "root-snapshot-fresh", "snapshot-quota-headroom"]


@pytest.mark.parametrize("clock", [VirtualClock, moving_clock], ids=["virtual", "moving"])
def test_a_ready_fleet_exits_0_and_every_format_parses(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        clock: Callable[[], Clock]) -> None:
    with cli_sandbox(monkeypatch, FleetSpec(plain=3, azs=2), clock=clock()) as cli:
        snapshot_roots(cli, cli.fleet.instance_ids())
        capsys.readouterr()
        role = operator_role(cli)
        code = run_cli("readiness", OFFLINE_REPAIR, "--operator-arn", role,
                       "--report", f"json:{tmp_path}/r.json",
                       "--report", f"sarif:{tmp_path}/r.sarif", "--report",
                       f"md:{tmp_path}/r.md")
        out = capsys.readouterr().out

    assert code == 0
    assert out.splitlines()[:10] == [
        "default/us-east-1:",
        "  ok   rescue-image-resolves: The rescue image resolves (1 of 1 passed)",
        "  ok   rescue-image-differs: The rescue image differs from the target's image "
        "(3 of 3 passed)",
        "  ok   rescue-ssm-managed: Rescue instances would be managed by SSM (1 of 1 passed)",
        "  ok   root-snapshot-fresh: The root volume has a recent snapshot (3 of 3 passed)",
        "  ok   kms-key-enabled: The root volume's KMS key is enabled (0 of 0 passed)",
        "  ok   kms-key-usable: The operator may use the root volume's KMS key (0 of 0 passed)",
        "  ok   vcpu-quota-headroom: vCPU quota leaves room for the rescue pool (1 of 1 passed)",
        "  ok   snapshot-quota-headroom: Snapshot quota leaves room for the backups (1 of 1 "
        "passed)",
        "  ok   iam-policy-granted: The operator's role has the playbook's IAM policy (1 of 1 "
        "passed)",
    ]
    assert out.endswith("\nREADY: every check passed in 1 account/Region scope(s)\n")
    assert json.loads((tmp_path / "r.json").read_text())["ready"] is True
    sarif = json.loads((tmp_path / "r.sarif").read_text())
    assert sarif["version"] == "2.1.0"
    assert [r["id"] for r in sarif["runs"][0]["tool"]["driver"]["rules"]] == [
        "rescue-image-resolves", "rescue-image-differs", "rescue-ssm-managed",
        "root-snapshot-fresh", "kms-key-enabled", "kms-key-usable", "vcpu-quota-headroom",
        "snapshot-quota-headroom", "iam-policy-granted", "bitlocker-key-escrowed"]
    assert sarif["runs"][0]["results"] == []
    assert "| default/us-east-1 | `root-snapshot-fresh` The root volume has a recent " \
           "snapshot | 3 | 0 |" in (tmp_path / "r.md").read_text()


def test_sarif_results_name_the_rule_and_the_resource(
        planted: tuple[CliSandbox, dict[str, str]], capsys: pytest.CaptureFixture[str]) -> None:
    cli, p = planted
    capsys.readouterr()
    code = run_cli("readiness", OFFLINE_REPAIR, "--param", f"rescue_image_id={p['rescue']}",
                   "--operator-arn", p["operator"],
                   "--region", "us-east-1", "--format", "sarif")

    run = json.loads(capsys.readouterr().out)["runs"][0]
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert code == 2
    stale = next(r for r in run["results"] if r["ruleId"] == "root-snapshot-fresh")
    assert rules[stale["ruleIndex"]] == "root-snapshot-fresh"
    assert stale["level"] == "error"
    volume = cli.fleet.target(p["stale"]).root_volume_id
    assert stale["message"]["text"].endswith(
        f" Fix: snapshot it now (aws ec2 create-snapshot --volume-id {volume} --region "
        "us-east-1) and keep it fresh with an AWS Backup plan or a Data Lifecycle Manager "
        "policy")
    assert stale["locations"] == [{"logicalLocations": [{
        "name": p["stale"], "fullyQualifiedName": f"default/us-east-1/{p['stale']}",
        "kind": "resource"}]}]


def test_a_check_that_cannot_read_fails_saying_so(
        planted: tuple[CliSandbox, dict[str, str]], capsys: pytest.CaptureFixture[str]) -> None:
    cli, p = planted
    cli.sandbox.fail("DescribeSnapshots", "UnauthorizedOperation",
                     "You are not authorized to perform this operation.")
    capsys.readouterr()
    code = run_cli("readiness", OFFLINE_REPAIR, "--param", f"rescue_image_id={p['rescue']}",
                   "--operator-arn", p["operator"],
                   "--region", "us-east-1")

    out = capsys.readouterr().out
    assert code == 2
    assert ("  [root-snapshot-fresh] default/us-east-1 default/us-east-1: could not check: "
            "DescribeSnapshots failed: UnauthorizedOperation: You are not authorized to "
            "perform this operation.\n"
            "      fix: allow the identity readiness runs as ec2:DescribeSnapshots (a read)\n"
            ) in out


def test_rescue_ssm_and_bitlocker_escrow_are_each_reported_once(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # DHMC off in eu-west-1 (no rescue instance profile given); of the three targets'
    # recovery keys one is kept as a SecureString, one as a String, one nowhere.
    spec = FleetSpec(plain=3, azs=1, regions=("us-east-1", OTHER))
    with cli_sandbox(monkeypatch, spec) as cli:
        setting = "/ssm/managed-instance/default-ec2-instance-management-role"
        cli.sandbox.client("ssm", OTHER).update_service_setting(SettingId=setting,
                                                                SettingValue="$None")
        east = [t for t in cli.fleet.targets if t.region == "us-east-1"]
        kept, clear, missing = east[0], east[1], [t for t in cli.fleet.targets
                                                  if t not in east[:2]]
        ssm = cli.sandbox.client("ssm")
        ssm.put_parameter(Name=f"/bitlocker/{kept.instance_id}", Type="SecureString",
                          Value="111111-222222")
        ssm.put_parameter(Name=f"/bitlocker/{clear.instance_id}", Type="String",
                          Value="111111-222222")
        snapshot_roots(cli, [t.instance_id for t in cli.fleet.targets])
        capsys.readouterr()

        code = run_cli("readiness", OFFLINE_REPAIR,
                       "--param", "bitlocker_keys=ssm:/bitlocker/{instance_id}",
                       "--region", "us-east-1", "--region", OTHER, "--format", "json")

        report = json.loads(capsys.readouterr().out)
        found = {(f["rule"], f["region"], f["resource"]): (f["message"], f["fix"])
                 for f in report["findings"] if f["rule"] != "iam-policy-granted"}
        assert code == 2
        account = "123456789012"
        expected = {
            ("rescue-ssm-managed", OTHER, setting): (
                f"rescue instances in default/{OTHER} (account {account}) would never be "
                "managed by SSM: no rescue_instance_profile, and Default Host Management "
                "Configuration is off there; the repair could not run and each target would "
                "wait the ready timeout",
                "give the playbook a rescue instance profile (--param "
                "rescue_instance_profile=NAME, its role with AmazonSSMManagedInstanceCore), or "
                "turn on Default Host Management Configuration (aws ssm update-service-setting "
                f"--setting-id {setting} --setting-value ROLE --region {OTHER})"),
            ("bitlocker-key-escrowed", "us-east-1", clear.instance_id): (
                f"the recovery key at ssm:/bitlocker/{clear.instance_id} for "
                f"{clear.instance_id} is a String parameter, readable in clear",
                "store it again as a SecureString (aws ssm put-parameter --overwrite --type "
                f"SecureString --name /bitlocker/{clear.instance_id} --value KEY --region "
                "us-east-1)"),
        }
        for target in missing:
            region = target.region
            expected[("bitlocker-key-escrowed", region, target.instance_id)] = (
                f"no recovery key kept at ssm:/bitlocker/{target.instance_id} for "
                f"{target.instance_id}",
                "if its root is BitLocker-protected, escrow its recovery password (on the "
                "instance: manage-bde -protectors -get C: -Type RecoveryPassword) with aws ssm "
                f"put-parameter --type SecureString --name /bitlocker/{target.instance_id} "
                f"--value KEY --region {region}")
        assert found == expected
        judged = {(s["region"], rule): counts for s in report["scopes"]
                  for rule, counts in s["rules"].items()}
        assert judged[("us-east-1", "bitlocker-key-escrowed")] == {"judged": 2, "failed": 1}
        assert judged[("us-east-1", "rescue-ssm-managed")] == {"judged": 1, "failed": 0}
        # Names and types only: no key was read.
        reads = [c for c in cli.sandbox.api_calls
                 if c.operation in ("GetParameter", "GetParameters", "GetSecretValue")]
        assert reads and not [c for c in reads if "bitlocker" in json.dumps(c.request)]


def test_each_account_is_a_scope_judged_with_its_own_role(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    away = "210987654321"
    text = Path(OFFLINE_REPAIR).read_text(encoding="utf-8").replace(
        "targets:\n", "targets:\n  accounts:\n    - name: home\n    - name: away\n"
        f"      role_arn: arn:aws:iam::{away}:role/remediate-readiness\n", 1)
    playbook = tmp_path / "two-accounts.yaml"
    playbook.write_text(text, encoding="utf-8")
    shutil.copytree(Path(OFFLINE_REPAIR).parent / "scripts", tmp_path / "scripts")
    with cli_sandbox(monkeypatch, FleetSpec(plain=2, azs=1)) as cli:
        other = cli.sandbox.build_fleet(FleetSpec(plain=1, azs=1, account=away))
        home_role = operator_role(cli, str(playbook))
        iam = cli.sandbox.client("iam", account=away)
        iam.create_role(RoleName="remediate-0", AssumeRolePolicyDocument="{}")  # no policy
        snapshot_roots(cli, cli.fleet.instance_ids())
        cli.sandbox.client("ec2", account=away).create_snapshot(
            VolumeId=other.targets[0].root_volume_id)
        cli.clock.advance(3600)
        # The sandbox's sessions share one botocore session, which holds the credentials of
        # the last session made (the away account's, above): the commands' must be home's.
        cli.sandbox.boto3_session()
        capsys.readouterr()
        code = run_cli("readiness", str(playbook), "--operator-arn", home_role, "--format",
                       "json")

    out, err = capsys.readouterr()
    assert err == ""
    report = json.loads(out)
    assert code == 2
    assert [(s["account"], s["region"]) for s in report["scopes"]] == [
        ("away", "us-east-1"), ("home", "us-east-1")]
    assert [(f["rule"], f["account"], f["resource"]) for f in report["findings"]] == [
        ("iam-policy-granted", "away", f"arn:aws:iam::{away}:role/remediate-0")]
    # Judged as the role of the same name in the away account, which has no policy.
    message = report["findings"][0]["message"]
    assert message.startswith(f"arn:aws:iam::{away}:role/remediate-0 is not allowed ")
    assert message.endswith(" (implicitDeny), ...")


@pytest.mark.parametrize(("args", "error"), [
    (["--max-snapshot-age", "soon"],
     "error: --max-snapshot-age expects a duration above 0 such as 24h, 36h or 7d, got "
     "'soon'\n"),
    (["--report", "pdf:out.pdf"],
     "error: --report expects FORMAT:PATH with FORMAT one of text, json, md, sarif, got "
     "'pdf:out.pdf'\n"),
    (["--operator-arn", "remediate"],
     "error: --operator-arn expects an IAM role or user ARN (arn:aws:iam::123456789012:role/"
     "NAME), got 'remediate'\n"),
    (["--region", ""],
     "error: --region has an empty value (''): give at least one id, or leave the option out "
     "to use the playbook's selector\n"),
])
def test_bad_input_is_one_line_exit_1_and_no_call(
        fleet: CliSandbox, capsys: pytest.CaptureFixture[str], args: list[str],
        error: str) -> None:
    fleet.sandbox.reset_api_calls()
    capsys.readouterr()
    code = run_cli("readiness", OFFLINE_REPAIR, *args)

    assert (code, capsys.readouterr().err) == (1, error)
    assert fleet.sandbox.api_calls == []


def test_a_playbook_without_rescue_instances_skips_the_rescue_image_checks(
        fleet: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    run_cli("readiness", REBOOT_FIRST, "--format", "json")

    rules = json.loads(capsys.readouterr().out)["scopes"][0]["rules"]
    assert list(rules) == ["root-snapshot-fresh", "kms-key-enabled", "kms-key-usable",
                           "vcpu-quota-headroom", "snapshot-quota-headroom",
        "iam-policy-granted"]


def test_a_caller_the_simulator_cannot_judge_is_told_to_name_the_role(
        fleet: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    # moto's caller is no IAM user or role: the simulator cannot judge it.
    capsys.readouterr()
    code = run_cli("readiness", REBOOT_FIRST, "--format", "json")

    iam = [f for f in json.loads(capsys.readouterr().out)["findings"]
           if f["rule"] == "iam-policy-granted"]
    assert code == 2
    assert [(f["message"], f["fix"]) for f in iam] == [(
        "could not check: SimulatePrincipalPolicy failed: NoSuchEntity: The user with name "
        "moto cannot be found.",
        "give --operator-arn the ARN of the role runs use (an IAM role or user: the policy "
        "simulator judges those)")]


