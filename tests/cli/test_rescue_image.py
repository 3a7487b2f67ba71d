"""The rescue AMI, checked before anything changes: a `rescue_image_id` the Region does not
have (or a resolve:ssm: parameter naming none there) is a blocking finding (the dry run
exits 2, the real run refuses every target before its backup, stop and detach), and the
dry run asks RunInstances with DryRun=True."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_support import (
    OFFLINE_REPAIR,
    CliSandbox,
    backups,
    cli_sandbox,
    root_states,
    run_cli,
)
from remediate.sandbox import FleetSpec

MISSING = "ami-12345678"
HINT = ("(hint: set rescue_image_id to an available AMI of that Region (aws ec2 "
        "describe-images --image-ids AMI --region REGION), or to resolve:ssm:PARAMETER naming "
        "one in every Region (aws ssm get-parameter --name PARAMETER --region REGION))")


@pytest.fixture
def two(monkeypatch: pytest.MonkeyPatch) -> Iterator[CliSandbox]:
    with cli_sandbox(monkeypatch, FleetSpec(plain=2, azs=1)) as cli:
        yield cli


def refusal(instance_id: str) -> str:
    return (f"blocked by rescue-image-unusable: rescue image {MISSING} does not exist in "
            f"us-east-1: no rescue instance for {instance_id} {HINT}")


def test_the_dry_run_blocks_a_rescue_image_the_region_does_not_have(
        two: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli("plan", OFFLINE_REPAIR, "--param", f"rescue_image_id={MISSING}")

    out = capsys.readouterr().out
    assert code == 2
    # One group: the same refusal, ids aside.
    lines = out.splitlines()
    head = lines.index(f"      {refusal('<id>')}") - 1
    prefix = "[1] 2 targets refused (findings: public-ip-will-change, rescue-image-unusable): "
    assert lines[head].startswith(prefix)
    assert sorted(lines[head].removeprefix(prefix).split(", ")) == sorted(
        two.fleet.instance_ids())
    assert "\n2 targets: 0 would be worked on, 2 refused; estimated 0s\n" in out
    assert f"      2 x rescue-image-unusable [block] {HINT}\n" in out
    # Looked up once for the Region, and nothing mutated.
    assert Counter(c.operation for c in two.sandbox.api_calls)["DescribeImages"] == 1
    assert two.mutating_calls() == []


def test_the_real_run_refuses_every_target_before_changing_anything(
        two: CliSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = two.fleet.instance_ids()
    before = root_states(two.ec2, ids)

    code = run_cli("run", OFFLINE_REPAIR, "--yes", "--no-progress", "--param",
                   f"rescue_image_id={MISSING}", "--journal", str(tmp_path / "j.sqlite"))

    err = capsys.readouterr().err
    assert code == 2
    for instance_id in ids:
        assert err.count(f"{instance_id} (us-east-1): refused: {refusal(instance_id)}\n") == 1
    assert two.mutating_calls() == []
    assert root_states(two.ec2, ids) == before
    assert all(backups(two.ec2, i) == [] for i in ids)


def test_the_dry_run_probes_the_rescue_launch_with_its_image(
        two: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    rescue = two.fleet.regions["us-east-1"].rescue_windows_ami
    assert run_cli("plan", OFFLINE_REPAIR, *two.rescue_param) == 0
    allowed = next(line for line in capsys.readouterr().out.splitlines()
                   if line.startswith("  allowed in default/us-east-1: "))
    assert "ec2:RunInstances" in allowed.split(": ", 1)[1].split(", ")
    assert [c.operation for c in two.sandbox.api_calls if c.dry_run].count("RunInstances") == 1

    two.sandbox.fail("RunInstances", "UnauthorizedOperation",
                     "You are not authorized to perform this operation.")
    try:
        assert run_cli("plan", OFFLINE_REPAIR, *two.rescue_param) == 2
    finally:
        two.sandbox.clear_faults()
    assert ("  denied ec2:RunInstances in default/us-east-1: UnauthorizedOperation: You are "
            "not authorized to perform this operation.\n") in capsys.readouterr().out

    # DescribeImages not allowed: the image cannot be judged by inspection, and the launch
    # probe (which carries it) is what tells that it is missing.
    two.sandbox.fail("DescribeImages", "UnauthorizedOperation", "not authorized")
    try:
        assert run_cli("plan", OFFLINE_REPAIR, "--param", f"rescue_image_id={MISSING}") == 0
    finally:
        two.sandbox.clear_faults()
    assert (f"  unchecked ec2:RunInstances in default/us-east-1: EC2 answered "
            f"InvalidAMIID.NotFound: The image id '[{MISSING}]' does not exist\n"
            in capsys.readouterr().out)
    assert rescue != MISSING and two.mutating_calls() == []


def test_the_default_rescue_image_resolves_in_the_region_and_the_dry_run_shows_it(
        two: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli("plan", OFFLINE_REPAIR)

    out = capsys.readouterr().out
    rescue = two.fleet.regions["us-east-1"].rescue_windows_ami
    assert code == 0
    assert f"\nrescue image (rescue_image_id): {rescue} in default/us-east-1\n" in out
    assert Counter(c.operation for c in two.sandbox.api_calls)["GetParameter"] == 1
    assert two.mutating_calls() == []


def test_a_parameter_that_does_not_exist_blocks_the_dry_run_in_one_line(
        two: CliSandbox, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli("plan", OFFLINE_REPAIR, "--param",
                   "rescue_image_id=resolve:ssm:/golden/windows-rescue")

    out = capsys.readouterr().out
    assert code == 2
    assert (f"      blocked by rescue-image-unusable: rescue image "
            f"resolve:ssm:/golden/windows-rescue does not resolve in us-east-1 (SSM "
            f"parameter /golden/windows-rescue does not exist): no rescue instance for "
            f"<id> {HINT}\n") in out
    assert "\n2 targets: 0 would be worked on, 2 refused; estimated 0s\n" in out
    assert "rescue image (rescue_image_id)" not in out
    calls = Counter(c.operation for c in two.sandbox.api_calls)
    assert (calls["GetParameter"], calls["DescribeImages"]) == (1, 0)
    assert two.mutating_calls() == []
