"""`--region`, `--tag`, `--filter`, `--target-ids`, `--limit` and the AWS environment
narrow the playbook's selector: what each selects, read from the audit."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from cli_support import REBOOT_FIRST, CliSandbox, cli_sandbox, run_cli
from remediate.sandbox import FleetSpec


@pytest.fixture(scope="module")
def two_regions() -> Iterator[CliSandbox]:
    """Six targets over two Regions; the first in us-east-1 also tagged team=payments."""
    with pytest.MonkeyPatch.context() as monkeypatch, cli_sandbox(monkeypatch, FleetSpec(
            plain=6, azs=1, regions=("us-east-1", "eu-west-1"))) as cli:
        cli.ec2.create_tags(Resources=[by_region(cli)["us-east-1"][0]],
                            Tags=[{"Key": "team", "Value": "payments"}])
        yield cli


def by_region(cli: CliSandbox) -> dict[str, list[str]]:
    return {region: sorted(i["InstanceId"] for r in cli.sandbox.client(
        "ec2", region).describe_instances()["Reservations"] for i in r["Instances"])
        for region in ("us-east-1", "eu-west-1")}


def audited(*args: str, capsys: pytest.CaptureFixture[str]) -> list[tuple[str, str]]:
    """(Region, id) of every target `plan --format json ARGS` selected."""
    capsys.readouterr()
    assert run_cli("plan", REBOOT_FIRST, "--format", "json", *args) == 0
    return sorted((t["region"], t["id"]) for t in json.loads(capsys.readouterr().out)["targets"])


def test_the_command_line_narrows_the_playbooks_selector(
        two_regions: CliSandbox, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    ids = by_region(two_regions)
    assert len(ids["us-east-1"]) >= 3 and len(ids["eu-west-1"]) >= 1
    east = [("us-east-1", i) for i in ids["us-east-1"]]
    west = [("eu-west-1", i) for i in ids["eu-west-1"]]
    tagged = ids["us-east-1"][0]

    assert audited(capsys=capsys) == east  # the playbook names no Region: AWS_DEFAULT_REGION
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # AWS_REGION wins over AWS_DEFAULT_REGION
    assert audited(capsys=capsys) == west
    monkeypatch.delenv("AWS_REGION")
    assert audited("--region", "eu-west-1", "--region", "us-east-1",
                   capsys=capsys) == sorted(east + west)
    assert audited("--tag", "team=payments", capsys=capsys) == [("us-east-1", tagged)]
    assert audited("--filter", f"instance-id={ids['us-east-1'][1]},{ids['us-east-1'][2]}",
                   capsys=capsys) == east[1:]
    assert audited("--target-ids", ids["us-east-1"][2], capsys=capsys) == east[2:]
    # --limit: the first N by account, Region, id.
    assert audited("--region", "eu-west-1", "--region", "us-east-1", "--limit", "4",
                   capsys=capsys) == sorted(east + west)[:4]
