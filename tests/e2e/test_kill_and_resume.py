"""Issue 4's evidence: `remediate run` killed with SIGKILL at random points, then
`remediate resume`: every target fixed, no volume lost, no rescue instance left.

A real run (a subprocess) against a sandbox server (another subprocess); the kill
points are the n-th mutating call journaled (the journal records each intent
before the request leaves), drawn from a seeded random generator.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from cli_support import (
    OFFLINE_REPAIR,
    misplaced_roots,
    repair_problems,
    rescue_instances,
    root_states,
)
from e2e_support import SandboxServer, journaled_calls, remediate, wait_for

# A 3-target offline repair journals about 36 mutating calls.
KILL_POINTS = range(1, 34)
RUN_TIMEOUT = 60.0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 19])
def test_killed_three_times_then_resumed_every_target_is_fixed(
        seed: int, sandbox_server: Callable[..., SandboxServer], tmp_path: Path) -> None:
    server = sandbox_server(fleet=3)
    ec2 = server.client("ec2")
    before = root_states(ec2, server.instance_ids)
    env = server.env(tmp_path / "crashes")
    journal = tmp_path / "journal.sqlite"
    kill_at = sorted(random.Random(seed).sample(KILL_POINTS, 3))
    history = []

    for attempt, point in enumerate(kill_at):
        args = (["run", OFFLINE_REPAIR, "--yes", "--no-progress", *server.rescue_param,
                 "--journal", str(journal)] if attempt == 0
                else ["resume", str(journal), "--no-progress"])
        process = remediate(args, env, tmp_path / f"attempt-{attempt}.log")
        wait_for(lambda: process.process.poll() is not None  # noqa: B023
                 or journaled_calls(journal) >= point,  # noqa: B023
                 RUN_TIMEOUT, f"mutating call {point} in the journal")
        if process.process.poll() is None:
            process.process.send_signal(signal.SIGKILL)
            process.process.wait()
            history.append(f"killed at call {journaled_calls(journal)}")
        else:
            history.append(f"exited {process.process.returncode}: {process.stderr()[-2000:]}")

    final = remediate(["resume", str(journal), "--no-progress"], env, tmp_path / "final.log")
    code = final.finish(RUN_TIMEOUT)

    assert [h.split(" at ")[0] for h in history] == ["killed"] * 3, history
    assert code == 0, f"{history}\n{final.stderr()}"
    assert {i: repair_problems(ec2, state) for i, state in before.items()} == {
        i: [] for i in before}, history
    assert misplaced_roots(ec2, before) == []
    assert rescue_instances(ec2) == []
