"""Ctrl-C (SIGINT) in the middle of a real `remediate run` (a subprocess)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from cli_support import OFFLINE_REPAIR, misplaced_roots, rescue_instances, root_states
from e2e_support import SandboxServer, journaled_calls, remediate, wait_for


@pytest.mark.slow
def test_ctrl_c_mid_run_exits_130_and_leaves_every_target_consistent(
        sandbox_server: Callable[..., SandboxServer], tmp_path: Path) -> None:
    server = sandbox_server(fleet=3)
    ec2 = server.client("ec2")
    before = root_states(ec2, server.instance_ids)
    journal = tmp_path / "journal.sqlite"
    run = remediate(["run", OFFLINE_REPAIR, "--yes", "--no-progress", *server.rescue_param,
                     "--journal", str(journal)], server.env(tmp_path), tmp_path / "run.log")
    # The canary's root volume is being detached (backup, stop, tag, detach journaled).
    wait_for(lambda: journaled_calls(journal) >= 4, 60, "the canary's DetachVolume")

    run.process.send_signal(signal.SIGINT)
    code = run.finish(60)

    assert code == 130, run.stderr()
    assert "interrupted: 1 target in flight: " in run.stderr()
    # Every root volume on its own instance at its own device, every instance running
    # (rolled back, or never touched), and the rescue instances cleaned up.
    assert misplaced_roots(ec2, before) == []
    assert {i: s.state for i, s in root_states(ec2, server.instance_ids).items()} == {
        i: "running" for i in server.instance_ids}
    assert rescue_instances(ec2) == []
