"""Issue 13, section 7: chaos. A built-in playbook runs on a sandbox server that loses
replies and throttles; the run is SIGKILLed at 20 mutating calls drawn at random
(forward and rollback), Ctrl-C'd once and twice, and resumed after each, then resumed
until it ends. Every target must end fixed or exactly as it was, nothing doubled or
left half-done, and every report must say what the journal says (see chaos.py and
chaos_checks.py).

Each CI run draws fresh seeds; a failure prints its seed. Replay one with
``REMEDIATE_CHAOS_SEED=SEED pytest tests/e2e/test_chaos.py -k PLAYBOOK``; soak with
``REMEDIATE_CHAOS_SCENARIOS=N`` (N scenarios per playbook; with a seed, SEED, SEED+1, ...).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from chaos import PLAYBOOKS, ChaosRun, Scenario
from chaos_checks import ec2_problems, workspace_problems
from cli_support import root_states
from e2e_support import InThreadServer

SEED_VARIABLE = "REMEDIATE_CHAOS_SEED"
SCENARIOS_VARIABLE = "REMEDIATE_CHAOS_SCENARIOS"


def seed_of(number: int) -> int:
    chosen = os.environ.get(SEED_VARIABLE)
    return int(chosen) + number if chosen else random.SystemRandom().randrange(2**32)


@pytest.mark.slow
@pytest.mark.parametrize("number", range(int(os.environ.get(SCENARIOS_VARIABLE) or 1)))
@pytest.mark.parametrize("playbook", sorted(PLAYBOOKS))
def test_interrupted_and_resumed_under_faults_every_target_ends_fixed_or_as_it_was(
        playbook: str, number: int, tmp_path: Path) -> None:
    scenario = Scenario.draw(seed_of(number), playbook)
    replay = (f"chaos seed {scenario.seed} ({scenario.describe()}); replay: "
              f"{SEED_VARIABLE}={scenario.seed} pytest tests/e2e/test_chaos.py -k {playbook}")
    print(replay)  # shown with the failure, whatever it is
    server = InThreadServer(scenario.fleet, scenario.clock_factor, scenario.durations).start()
    try:
        before = root_states(server.client("ec2"), server.fleet.instance_ids())
        workspaces_before = server.workspace_states() if server.fleet.workspaces else {}
        scenario.inject_faults(server.sandbox)
        chaos = ChaosRun(scenario, server, tmp_path)
        chaos.play()
        server.sandbox.set_throttle(None)  # the checks' own reads
        server.sandbox.clear_faults()
        history = "\n".join([*chaos.history, f"{chaos.kills} SIGKILLs; ended: "
                                              f"{chaos.statuses()}"])
        print(history)
        assert chaos.run_ended(), f"{replay}\nthe run did not end:\n{history}"
        problems = (ec2_problems(server, before, chaos.journal) if playbook == "offline-repair"
                    else workspace_problems(server, workspaces_before, chaos.journal))
        problems += [f"{e.name}'s reports: {p}" for e in chaos.ended for p in e.reports]
        problems += [f"{e.name} said: {line}" for e in chaos.ended
                     for line in e.stderr.splitlines()
                     if "internal error in" in line or "Traceback" in line]
        assert problems == [], f"{replay}\n" + "\n".join(problems) + f"\n{history}"
    finally:
        server.close()

