"""`remediate plan` forecasts the run: per operation, the mutating calls the real run then
makes on the same sandbox fleet (within 5%), and its makespan (within 25%, simulated
time), canary batches, rescue pools and AWS's buckets included. At fleet size its text
is a page, not a block per target."""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import cli_support
from cli_support import CliSandbox, cli_sandbox, run_cli
from remediate.claims.registry import STATE_DIR_VARIABLE
from remediate.language.durations import format_duration
from remediate.sandbox import FleetSpec

OFFLINE_REPAIR, REBOOT_FIRST = cli_support.OFFLINE_REPAIR, cli_support.REBOOT_FIRST
# 205 instances over 3 AZs with the pitfalls: 13 refused (hibernation is only reported).
MIXED_205 = FleetSpec(plain=190, instance_store=3, spot_one_time=2, spot_persistent=2,
                      stop_protected=2, encrypted_bad_key=2, marketplace=2, hibernation=2,
                      with_eip=10, azs=3)
CASES = {
    "offline-repair-205": (OFFLINE_REPAIR, MIXED_205, []),
    "reboot-first-25": (REBOOT_FIRST, FleetSpec(plain=25, azs=3), []),
    "replace-root-25-two-regions": (
        cli_support.REPLACE_ROOT,
        FleetSpec(plain=20, instance_store=5, azs=2, regions=("us-east-1", "eu-west-1")),
        ["--accept", "root-replacement-data-loss", "--region", "us-east-1",
         "--region", "eu-west-1"]),
    "workspaces-25": (cli_support.WORKSPACES_RECOVER, FleetSpec(
        plain=0, workspaces=25, workspace_mix=("reboot", "stopped-reboot", "healthy")), []),
}


@dataclass
class Planned:
    cli: CliSandbox
    code: int
    text: str
    report: dict[str, Any]
    markdown: str
    mutating_during_plan: list[str]
    options: list[str]


def _cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run_cli(*args)
    return code, out.getvalue()


@contextlib.contextmanager
def planned(case: str, folder: Path) -> Iterator[Planned]:
    """``case``'s fleet in a sandbox, and `remediate plan --rehearsal` on it."""
    playbook, spec, options = CASES[case]
    with pytest.MonkeyPatch.context() as monkeypatch, cli_sandbox(monkeypatch, spec) as cli:
        monkeypatch.setenv(STATE_DIR_VARIABLE, str(folder / "state"))
        if playbook == OFFLINE_REPAIR:
            options = [*options, *cli.rescue_param]
        cli.sandbox.reset_api_calls()
        code, text = _cli("plan", playbook, "--rehearsal", "--report",
                          f"json:{folder / 'plan.json'}", "--report", f"md:{folder / 'plan.md'}",
                          *options)
        yield Planned(cli, code, text, json.loads((folder / "plan.json").read_text()),
                      (folder / "plan.md").read_text(), cli.mutating_calls(), options)


def _run_and_compare(plan: Planned, case: str, folder: Path) -> None:
    playbook, spec, _ = CASES[case]
    forecast = plan.report["forecast"]
    assert plan.mutating_during_plan == [], "plan must not change anything"
    assert forecast["targets"] == len(plan.report["targets"]) == spec.targets + spec.workspaces
    regions = {t["region"] for t in plan.report["targets"]}
    assert regions == set(spec.regions)
    cli = plan.cli
    cli.sandbox.reset_api_calls()
    started = cli.clock.now()
    code, _ = _cli("run", playbook, "--yes", "--journal", str(folder / "journal.sqlite"),
                   *plan.options)
    makespan = cli.clock.now() - started
    real = Counter(f"{c.service}:{c.operation}" for c in cli.sandbox.api_calls
                   if c.mutating and not c.throttled)
    predicted = forecast["mutating_calls"]
    assert code in (0, 2)
    assert sorted(predicted) == sorted(real), (predicted, real)
    for api, count in real.items():
        # 5%, or one call where 5% is less than one (merged StartInstances included: on
        # the simulated clock a run's requests do not depend on its I/O threads' timing).
        tolerance = 0.05
        assert abs(predicted[api] - count) <= max(1.0, tolerance * count), (
            api, predicted[api], count)
    total = sum(real.values())
    assert abs(sum(predicted.values()) - total) <= 0.05 * total
    assert abs(forecast["seconds"] - makespan) <= 0.25 * makespan, (forecast["seconds"],
                                                                     makespan)
    assert plan.report["estimate_seconds"] == forecast["seconds"]
    # The Markdown audit has the same figures.
    assert f"\n## Forecast\n\n{format_duration(forecast['seconds'])}, from rehearsing " \
        in plan.markdown
    for api, count in predicted.items():
        assert f"\n| `{api}` | {count} |\n" in plan.markdown


def test_205_offline_repairs_a_page_of_plan_then_the_run_it_forecast(tmp_path: Path) -> None:
    """One plan of 205 instances (the rehearsal takes a while): its text, then the run."""
    with planned("offline-repair-205", tmp_path) as plan:
        _check_the_page(plan)
        # Rescue pools: at most rescue_per_az (8) instances in each of the 3 AZs, not two
        # launches per target.
        assert plan.report["forecast"]["mutating_calls"]["ec2:RunInstances"] <= 3 * 8
        _run_and_compare(plan, "offline-repair-205", tmp_path)


@pytest.mark.parametrize("case", ["reboot-first-25", "replace-root-25-two-regions",
                                  "workspaces-25"])
def test_the_forecast_matches_the_run(case: str, tmp_path: Path) -> None:
    with planned(case, tmp_path) as plan:
        _run_and_compare(plan, case, tmp_path)


def _check_the_page(plan: Planned) -> None:
    """205 targets grouped by what they would get: a page, not a block per target."""
    lines = plan.text.splitlines()
    headline = ("205 targets: 192 would be worked on, 13 refused; forecast "
                f"{_duration(plan)}, ")
    assert len(lines) <= 60, plan.text
    assert lines[0].startswith(f"dry run of {OFFLINE_REPAIR} (")
    assert lines[1].startswith(headline) and lines[-1] == lines[1]
    heads = [line for line in lines if line.startswith("[")]
    # Refused groups first, each kind of refusal once, then the ones worked on.
    refused = [h for h in heads if " refused" in h]
    assert heads[:len(refused)] == refused and len(refused) >= 5
    worked = [h for h in heads if " would be worked on" in h]
    assert worked and heads[len(refused):] == worked
    counts = [int(h.split("] ", 1)[1].split(" ", 1)[0]) for h in heads]
    assert sum(counts) == 205
    big = max(worked, key=lambda h: int(h.split("] ", 1)[1].split(" ", 1)[0]))
    assert big.endswith(" more (--format json lists all)")
    # The steps of groups that would get the same steps are said once.
    assert sum(line.strip().startswith("backup (ec2.snapshot_root)") for line in lines) == 1
    assert len(plan.report["targets"]) == 205


def _duration(plan: Planned) -> str:
    return format_duration(plan.report["forecast"]["seconds"])


def test_a_plan_that_cannot_rehearse_says_why_and_estimates_from_the_rates(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from remediate.forecast import child
    from remediate.forecast.model import FleetModel, Forecast, ForecastFailed

    asked: list[FleetModel] = []

    def cannot(model: FleetModel) -> Forecast:
        asked.append(model)
        raise ForecastFailed("the rehearsal needs the sandbox")

    monkeypatch.setattr(child, "forecast", cannot)
    with cli_sandbox(monkeypatch, FleetSpec(plain=2, azs=1)):
        code, text = _cli("plan", REBOOT_FIRST)
        assert asked == []  # tests turn it off (REMEDIATE_REHEARSAL=0)...
        code, text = _cli("plan", REBOOT_FIRST, "--rehearsal")

    assert code == 0
    assert [len(m.instances) for m in asked] == [2]
    assert ("warning: the run could not be rehearsed (the rehearsal needs the sandbox); "
            "the estimate is from the API rates alone") in text.splitlines()
    assert "estimated duration, paced to the API limits: " in text


def test_unasked_a_plan_rehearses_up_to_the_limit_and_says_so_above_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from remediate.cli import launch
    from remediate.forecast import child
    from remediate.forecast.model import FleetModel, Forecast, ForecastFailed

    asked: list[FleetModel] = []

    def recorded(model: FleetModel) -> Forecast:
        asked.append(model)
        raise ForecastFailed("recorded")

    monkeypatch.setattr(child, "forecast", recorded)
    monkeypatch.delenv("REMEDIATE_REHEARSAL")
    with cli_sandbox(monkeypatch, FleetSpec(plain=2, azs=1)):
        monkeypatch.setattr(launch, "REHEARSAL_AUTO_LIMIT", 1)
        capsys.readouterr()
        code, _ = _cli("plan", REBOOT_FIRST)
        above = capsys.readouterr().err
        assert asked == []
        monkeypatch.setattr(launch, "REHEARSAL_AUTO_LIMIT", 2)
        again, _ = _cli("plan", REBOOT_FIRST)
        within = capsys.readouterr().err

    assert (code, again) == (0, 0)
    assert [len(m.instances) for m in asked] == [2]
    assert ("note: 2 targets: the estimate is from the API rates alone; a rehearsal of more "
            "than 1 takes minutes (--rehearsal forecasts by one anyway)") in above.splitlines()
    assert "note: 2 targets" not in within
