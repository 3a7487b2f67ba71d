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
        seen.update(kwargs, port=port)
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
