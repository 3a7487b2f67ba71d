"""`remediate sandbox serve`: what its options hand the server, and what it prints.

The server itself is tested in tests/sandbox/test_server.py and, as a process, in
tests/e2e/test_sandbox_serve_cli.py.
"""

from __future__ import annotations

from typing import Any, TextIO

import pytest

from cli_support import run_cli
from remediate.sandbox import Fleet, RegionSetup, Target
from remediate.sandbox import server as sandbox_server
from remediate.sandbox.state import LostReplies

FLEET = Fleet(
    targets=(Target("i-0123456789abcdef0", "us-east-1", "us-east-1a", "plain",
                    "vol-0123456789abcdef0", "/dev/sda1", "ami-1"),),
    workspaces=(),
    regions={"us-east-1": RegionSetup("us-east-1", "vpc-1", {"us-east-1a": "subnet-1"},
                                      "sg-1", "ami-1", "ami-2", "ami-3", "ami-4", "key-1")})


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The arguments `sandbox serve` gave the server, which announces itself and returns."""
    seen: dict[str, Any] = {}

    def serve(port: int, spec: Any, *, out: TextIO | None = None,
              **kwargs: Any) -> int:
        seen.update(kwargs, port=port, spec=spec)
        text = sandbox_server.announcement("http://127.0.0.1:5000", FLEET,
                                           kwargs.get("stepfunctions", False),
                                           kwargs.get("lost_replies"))
        assert out is not None
        out.write(text + "\n")
        return 0

    monkeypatch.setattr(sandbox_server, "serve", serve)
    return seen


def test_lose_replies_and_its_seed_reach_the_server_and_are_announced(
        served: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("sandbox", "serve", "--lose-replies", "0.25", "--seed", "7") == 0

    assert served["lost_replies"] == LostReplies(0.25, 7)
    out = capsys.readouterr().out
    assert ("lost replies: each mutating call takes effect, then answers 500 InternalError "
            "with probability 0.25 (seed 7)") in out.splitlines()


def test_without_lose_replies_no_reply_is_lost(
        served: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("sandbox", "serve") == 0

    assert served["lost_replies"] is None
    assert "lost replies" not in capsys.readouterr().out


def test_the_rehearsal_commands_it_prints_carry_its_clock_factor(
        served: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """Without the factor, the tool's own waits (polls, backoff) would run in real time
    against a sandbox whose state changes run 30 times faster."""
    assert run_cli("sandbox", "serve", "--clock-factor", "30") == 0

    assert served["clock_factor"] == 30.0
    lines = capsys.readouterr().out.splitlines()
    start = lines.index("in another shell:")
    assert lines[start + 2:start + 4] == [
        "  remediate plan playbooks/ec2-offline-repair.yaml --clock-factor 30",
        "  remediate run playbooks/ec2-reboot-first.yaml --clock-factor 30"]


@pytest.mark.parametrize(("flags", "dhmc"), [((), True), (("--no-dhmc",), False)])
def test_the_fleet_has_dhmc_on_unless_told_otherwise(
        served: dict[str, Any], flags: tuple[str, ...], dhmc: bool) -> None:
    """Off, rescue instances launched without an instance profile never reach SSM."""
    assert run_cli("sandbox", "serve", *flags) == 0

    assert served["spec"].dhmc is dhmc
