"""`remediate demo`: break a sandbox fleet the way 19 July 2024 did, then fix it.

Everything runs against the embedded sandbox (moto, made realistic): no AWS
account, no network. The same command path as `remediate plan` / `run` is used,
with the sandbox's session and clock.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import click

from remediate.cli import exitcodes
from remediate.cli.fleets import demo_spec
from remediate.cli.launch import Environment, RunRequest, execute
from remediate.cli.options import FiniteFloat, TargetArgs

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
ACCEPT_WORKSPACES = frozenset({"workspace-restore-data-loss", "workspace-rebuild-data-loss"})


def _playbook(name: str) -> str:
    path = PLAYBOOKS / name
    if not path.is_file():
        raise exitcodes.UserError(f"the built-in playbook {path} is missing (is remediate "
                                  "installed from a checkout? `pip install -e .`)")
    return str(path)


def _section(title: str) -> None:
    click.echo(f"\n=== {title} " + "=" * max(0, 70 - len(title)))


def _fleet_state(sandbox: Any, fleet: Any) -> list[str]:
    ec2 = sandbox.client("ec2")
    ids = [t.instance_id for t in fleet.targets]
    statuses = {s["InstanceId"]: s for s in ec2.describe_instance_status(
        InstanceIds=ids, IncludeAllInstances=True)["InstanceStatuses"]}
    healthy = Counter[str]()
    for target in fleet.targets:
        status = statuses[target.instance_id]
        ok = (status["InstanceState"]["Name"] == "running"
              and status["InstanceStatus"]["Status"] == "ok"
              and status["SystemStatus"]["Status"] == "ok")
        healthy[f"{target.kind}: {'healthy' if ok else 'BROKEN'}"] += 1
    lines = [f"  {count:4d} {what}" for what, count in sorted(healthy.items())]
    ids = [w.workspace_id for w in fleet.workspaces]
    spaces = sandbox.client("workspaces").describe_workspaces(WorkspaceIds=ids)["Workspaces"] \
        if ids else []
    states = Counter(w["State"] for w in spaces)
    lines += [f"  {count:4d} WorkSpaces {state}" for state, count in sorted(states.items())]
    return lines


def _outcome(report: Path, last: dict[str, tuple[str, str]]) -> str:
    """One line from a run's JSON report; ``last`` keeps each target's latest status and
    why (a target refused by one route and fixed by the next ends fixed)."""
    targets = json.loads(report.read_text(encoding="utf-8"))["targets"]
    for target in targets:
        last[target["id"]] = (target["status"], target.get("error") or "")
    counts = Counter(t["status"] for t in targets)
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def _needs_a_human(last: dict[str, tuple[str, str]]) -> list[str]:
    return [f"  {target}: {status}: {why}" for target, (status, why) in sorted(last.items())
            if status not in ("succeeded", "skipped")]


@click.command(epilog=exitcodes.EPILOG)
@click.option("--fleet", "plain", type=click.IntRange(1, 5000), default=12, show_default=True,
              help="Plain broken Windows instances (plus one of each pitfall).")
@click.option("--workspaces", type=click.IntRange(0, 500), default=6, show_default=True)
@click.option("--speed", type=FiniteFloat(min=0), default=0.0, show_default=True,
              help="0: simulated time (instant); N: N simulated seconds per real second.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bars (default: when stderr is a terminal).")
@click.option("--report-dir", type=click.Path(file_okay=False), default=".remediate/demo",
              show_default=True, help="Where the JSON, JUnit and Markdown reports and the "
                                      "journal go.")
def demo(plain: int, workspaces: int, speed: float, progress: bool | None,
         report_dir: str) -> int:
    """Build a broken fleet in the sandbox, audit it, fix it, report.

    Mixed on purpose: plain Windows instances in a boot loop, some that reboots
    fix, one with instance-store volumes, a one-time Spot, a stop-protected one,
    one with an unusable KMS key, a Marketplace one, and WorkSpaces.
    """
    from remediate.clock import Clock, ScaledClock, VirtualClock
    from remediate.sandbox import Durations, Sandbox

    clock: Clock = ScaledClock(speed) if speed > 0 else VirtualClock()
    journal = str(Path(report_dir) / "demo-journal.sqlite")
    worst = exitcodes.OK
    last: dict[str, tuple[str, str]] = {}
    # AWS's own pace: Windows boots in 2-5 min, a crash-looping guest stops slowly.
    with Sandbox(clock=clock, durations=Durations.realistic()) as sandbox:
        fleet = sandbox.build_fleet(demo_spec(plain=plain, workspaces=workspaces))
        region = next(iter(fleet.regions))
        env = Environment(clock=clock, session=sandbox.boto3_session(region), interactive=False)
        _section("the fleet, broken (tagged incident=crowdstrike-2024-07-19)")
        click.echo("\n".join(_fleet_state(sandbox, fleet)))

        def step(title: str, playbook: str, **kw: Any) -> int:
            _section(title)
            # The audit's reports are its own: route 2 runs the same playbook later.
            name = playbook.removesuffix(".yaml") + ("-plan" if kw.get("dry_run") else "")
            reports = tuple(f"{fmt}:{report_dir}/{name}.{ext}" for fmt, ext in
                            (("json", "json"), ("junit", "xml"), ("md", "md")))
            request = RunRequest(_playbook(playbook), journal_path=journal, progress=progress,
                                 yes=True, reports=reports, **kw)
            code = execute(request, env)
            outcome = _outcome(Path(report_dir) / f"{name}.json", {} if kw.get("dry_run")
                               else last)
            click.echo(f"-> exit code {code}: {outcome} "
                       f"(reports: {report_dir}/{name}.json, .xml, .md)")
            return code

        step("1. dry-run audit: the offline repair, for every instance", "ec2-offline-repair.yaml",
             dry_run=True)
        step("2. route 1: reboot (up to 3 times)", "ec2-reboot-first.yaml")
        worst = max(worst, step(
            "3. route 2: offline repair through rescue instances, for the rest",
            "ec2-offline-repair.yaml"))
        special = [t.instance_id for t in fleet.targets
                   if t.kind in ("instance_store", "spot_one_time")]
        if special:
            worst = max(worst, step(
                "4. route 3: replace the root volume, for instance-store and Spot instances",
                "ec2-replace-root-volume.yaml", targets=TargetArgs(target_ids=tuple(special)),
                accepted=frozenset({"root-replacement-data-loss", "instance-store-data-loss"})))
        if fleet.workspaces:
            worst = max(worst, step("5. WorkSpaces: start, reboot, restore, rebuild",
                                    "workspaces-recover.yaml", accepted=ACCEPT_WORKSPACES))
        _section("the fleet, after")
        click.echo("\n".join(_fleet_state(sandbox, fleet)))
    _section("needs a human (refused on purpose: each line says what to do)")
    click.echo("\n".join(_needs_a_human(last)) or "  nothing")
    return exitcodes.OK if worst in (exitcodes.OK, exitcodes.TARGETS_FAILED) else worst
