"""Issue 13, section 3, as an operator does it: Ctrl-C once (targets roll back),
`resume`, Ctrl-C twice during its rollback, `resume` again; real processes against a
sandbox server, the offline-repair playbook.

Every instance must end fixed, or exactly as it was (state, root volume at its
device, DeleteOnTermination), and the failure budget (10%: none of 6 may fail) must
not be spent by what the operator interrupted. The second Ctrl-C must stop waiting:
the rescue pool's cleanup is left to the last `resume`, which does it.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from cli_support import OFFLINE_REPAIR, misplaced_roots, repair_problems, rescue_instances
from e2e_support import SandboxServer, calls_after, last_call_id, remediate, wait_for

RUN_TIMEOUT = 90.0


def detached_targets(journal: Path, after: int = 0) -> set[str]:
    """Targets whose root volume a forward step detached (journaled after call ``after``)."""
    return {key for _, key, step in calls_after(journal, after, "DetachVolume", rollback=False)
            if step == "detach"}


@pytest.mark.slow
def test_ctrl_c_resume_ctrl_c_twice_in_its_rollback_resume_every_target_fixed_or_as_it_was(
        sandbox_server: Callable[..., SandboxServer], tmp_path: Path) -> None:
    server = sandbox_server(fleet=6, clock_factor=100.0)
    ec2 = server.client("ec2")
    before = server.root_states()
    env = server.env(tmp_path / "crashes")
    journal = tmp_path / "journal.sqlite"

    # Batches 1, 1, 2, 2: Ctrl-C once while the third batch is mid-swap.
    first = remediate(["run", OFFLINE_REPAIR, "--yes", "--no-progress", *server.rescue_param,
                       "--journal", str(journal)], env, tmp_path / "run.log")
    wait_for(lambda: len(detached_targets(journal)) >= 3, RUN_TIMEOUT,
             "the third batch's first root volume detached")
    first.process.send_signal(signal.SIGINT)
    assert first.finish(RUN_TIMEOUT) == 130, first.stderr()[-3000:]
    assert "rolled back to where it was; `remediate resume` starts it again" in first.stderr()

    # The resumed run starts a rolled-back target again (its canary): Ctrl-C once when
    # its root volume is off again, and twice when its rollback puts it back.
    mark = last_call_id(journal)
    second = remediate(["resume", str(journal), "--no-progress"], env, tmp_path / "resume.log")
    wait_for(lambda: bool(detached_targets(journal, mark)), RUN_TIMEOUT,
             "a restarted target's root volume detached")
    second.process.send_signal(signal.SIGINT)
    wait_for(lambda: bool(calls_after(journal, mark, rollback=True)), RUN_TIMEOUT,
             "the restarted target's rollback", interval=0.005)
    second.process.send_signal(signal.SIGINT)
    pressed = last_call_id(journal)
    assert second.finish(RUN_TIMEOUT) == 130, second.stderr()[-3000:]
    assert "interrupted again: " in second.stderr()
    # It stopped waiting: the rescue pool's cleanup was left, and said so, in one line.
    assert [step for _, _, step in calls_after(journal, pressed)
            if step == "finish"] == [], second.stderr()[-3000:]
    assert (f"warning: Ctrl-C twice: terminating the rescue instances in default/us-east-1 "
            f"is left to `remediate resume {journal}`\n") in second.stderr()
    assert rescue_instances(ec2)

    final = remediate(["resume", str(journal), "--no-progress"], env, tmp_path / "final.log")
    code = final.finish(RUN_TIMEOUT)

    history = "\n".join(p.stderr()[-2000:] for p in (first, second, final))
    assert code == 0, history
    assert "failure budget" not in history
    # Every instance fixed (nothing was left "exactly as it was": resume finished each).
    assert {i: repair_problems(ec2, state) for i, state in before.items()} == {
        i: [] for i in before}, history
    assert misplaced_roots(ec2, before) == []
    assert rescue_instances(ec2) == []
