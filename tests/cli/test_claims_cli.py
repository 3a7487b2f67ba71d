"""`remediate plan` writes no claim but shows a target another live run holds as refused."""

from __future__ import annotations

import pytest

from cli_support import REBOOT_FIRST, cli_sandbox, run_cli
from remediate.claims.tag import CLAIM_TAG, Claim
from remediate.sandbox import FleetSpec


def test_plan_shows_a_target_claimed_by_a_live_run_as_refused_and_writes_nothing(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with cli_sandbox(monkeypatch, FleetSpec(plain=0, reboot_fixable=2, azs=1)) as cli:
        held, free = sorted(cli.fleet.instance_ids())
        claim = Claim.of("r20240719-052900-abcdef", "bastion-2", 4242, cli.clock.wall(),
                         cli.clock.wall().replace(hour=6)).text()
        cli.ec2.create_tags(Resources=[held], Tags=[{"Key": CLAIM_TAG, "Value": claim}])
        cli.sandbox.reset_api_calls()

        code = run_cli("plan", REBOOT_FIRST)

        out = capsys.readouterr().out
        assert code == 2
        assert (f"] 1 target refused: {held}\n      default/us-east-1/{held} "
                "is locked by run r20240719-052900-abcdef (pid 4242 on bastion-2, started "
                "2024-07-19T05:30:00Z) (claim tag remediate:claim on the target, until "
                "2024-07-19T06:30:00Z)\n") in out
        assert f"] 1 target would be worked on: {free}\n" in out
        assert [c for c in cli.sandbox.api_calls if c.mutating] == []
