"""workspaces-recover.yaml while AWS loses replies: every call takes effect, its answer a 500.

The executor cannot tell whether a lost call of a WorkSpaces request went through, so it
does not resend it: the step reads the WorkSpace again and finds its own call under way.
Whatever is lost, every WorkSpace ends AVAILABLE, no target fails, and no WorkSpace is
restored or rebuilt twice (each of those calls throws user data away).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from remediate.cli.launch import Environment, RunRequest, execute
from remediate.clock import VirtualClock
from remediate.sandbox import FleetSpec, Sandbox

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "workspaces-recover.yaml"
ACCEPTED = frozenset({"workspace-restore-data-loss", "workspace-rebuild-data-loss"})
# Two of each condition: reboot, restore, rebuild, stopped (healthy), stopped-reboot.
FLEET = FleetSpec(plain=0, workspaces=10, azs=1)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(clock=VirtualClock()) as sb:
        yield sb


@pytest.mark.parametrize(("probability", "seed"), [(1.0, 0), (0.5, 1), (0.5, 2), (0.3, 3)])
def test_every_workspace_recovers_and_none_is_restored_or_rebuilt_twice(
        sandbox: Sandbox, tmp_path: Path, probability: float, seed: int) -> None:
    fleet = sandbox.build_fleet(FLEET)
    sandbox.lose_replies("*", probability, seed=seed)
    report = tmp_path / "run.json"
    env = Environment(clock=sandbox.clock, session=sandbox.boto3_session(), interactive=False)
    request = RunRequest(str(PLAYBOOK), journal_path=str(tmp_path / "j.sqlite"), progress=False,
                         yes=True, accepted=ACCEPTED, reports=(f"json:{report}",))

    code = execute(request, env)

    sandbox.clear_faults()
    outcome = {t["id"]: (t["status"], t["error"])
               for t in json.loads(report.read_text())["targets"]}
    ids = [w.workspace_id for w in fleet.workspaces]
    found = sandbox.client("workspaces").describe_workspaces(WorkspaceIds=ids)["Workspaces"]
    assert (code, outcome) == (0, {wid: ("succeeded", None) for wid in ids})
    assert {w["WorkspaceId"]: w["State"] for w in found} == {wid: "AVAILABLE" for wid in ids}
    calls = [c for c in sandbox.api_calls if c.mutating]
    assert any(c.reply_lost for c in calls)
    # One a call: a restore for each WorkSpace a reboot does not fix, a rebuild for each a
    # restore does not fix; none twice.
    needs = Counter(w.fixed_by for w in fleet.workspaces)
    sent = Counter(c.operation for c in calls)
    assert (sent["RestoreWorkspace"], sent["RebuildWorkspaces"]) == (
        needs["restore"] + needs["rebuild"], needs["rebuild"])
