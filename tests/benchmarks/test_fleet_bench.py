"""The fleet benchmark, small: every target fixed, under AWS's buckets (no speed checks)."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest

from fleet_bench import block_key, jobs_for, main, parse, playbook_params, setup_for
from fleetbench.bound import WAIT, bound, path_for
from fleetbench.report import END, START, best_of, markers, render, write_results
from fleetbench.runner import extrapolate, run
from fleetbench.scenarios import SSM_BUCKETS, Scenario, Setup, load, params_for, prepare
from remediate.claims.tag import CLAIM_TAG
from remediate.sandbox import Bucket, Durations, ThrottlePolicy

READS = ("Describe", "Get", "List")


@pytest.mark.parametrize("playbook", ["offline-repair", "reboot-first"])
def test_remediate_fixes_every_target_without_drawing_aws_throttling(playbook: str) -> None:
    scenario = Scenario(playbook, 20)

    m = run(scenario, "remediate", Setup(rescue_per_az=1))

    assert m.statuses == {"succeeded": 20}
    assert (m.fixed, m.rescue_left) == (20, 0)
    assert m.throttled == 0
    assert m.bound is not None  # drawn per target, as the run's sandbox drew them
    assert m.makespan >= m.bound.seconds >= m.bound.critical_path >= 120 + 120
    assert m.cpu.tool > 0 and m.cpu.simulator > 0
    assert m.metered_requests == m.api_calls  # the simulator's CPU is metered on every one


def test_a_multi_region_offline_repair_resolves_the_rescue_image_in_each_region() -> None:
    m = run(Scenario("offline-repair", 8, regions=2), "remediate", Setup(rescue_per_az=1))

    assert m.statuses == {"succeeded": 8}
    assert (m.fixed, m.rescue_left) == (8, 0)
    assert m.calls_by_api["ssm:GetParameter"] == 2  # the playbook's default, once per Region


def test_unpaced_calls_against_tight_buckets_are_throttled_and_still_fix_every_target() -> None:
    tight = ThrottlePolicy.aws_defaults({
        **SSM_BUCKETS,
        "ec2:DetachVolume": Bucket(3, 0.5),
        "ec2:AttachVolume": Bucket(3, 0.5),
    })

    random.seed(20)  # retries' full jitter: the same draws every run
    m = run(Scenario("offline-repair", 20), "unpaced", Setup(), policy=tight)

    assert (m.fixed, m.rescue_left) == (20, 0)
    assert m.throttled > 0
    assert m.calls_by_api["ec2:DetachVolume"] == 40  # answered once per detach, no more


def test_one_at_a_time_runs_a_sample_and_extrapolates_it() -> None:
    m = run(Scenario("reboot-first", 50), "one-at-a-time", Setup(), sample=3)

    assert (m.targets, m.fixed, m.extrapolated_from) == (3, 3, 3)
    assert m.first_done is not None
    # Each target needs its two reboots, one after the other.
    assert m.makespan >= 50 * 2 * Durations().reboot


def test_the_bound_models_the_calls_the_offline_repair_makes_for_one_target() -> None:
    durations = Durations()
    scenario = Scenario("offline-repair", 1)

    m = run(scenario, "remediate", Setup(), keep_calls=True)

    per_rescue = {"RunInstances", "TerminateInstances"}
    # The run's claim tag (written, renewed, removed) is per run, 1,000 targets a call.
    made = [f"{c.service}:{c.operation}" for c in m.calls
            if not c.operation.startswith(READS) and c.operation not in per_rescue
            and not c.names(CLAIM_TAG)]
    assert made == [hop.call for hop in path_for(scenario, durations)
                    if not hop.call.startswith(WAIT)]
    assert m.fixed == 1


def test_extrapolation_adds_the_mean_time_per_target_after_the_first() -> None:
    assert extrapolate([100.0, 150.0, 200.0], 210.0, 10) == 210.0 + 50.0 * 7
    assert extrapolate([100.0], 120.0, 4) == 480.0


def test_results_keep_the_hand_written_analysis_around_the_generated_block(
        tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text(f"# Results\n\n{START}\nold figures\n{END}\n\n## Analysis\nkept\n")
    scenario = Scenario("reboot-first", 20)
    m = run(scenario, "remediate", Setup())
    body = render([m], {scenario: bound(path_for(scenario, Durations()), 20)})

    write_results(results, "python benchmarks/fleet_bench.py --sizes 20", "env", body)

    text = results.read_text()
    assert "old figures" not in text
    assert text.startswith("# Results\n\n" + START)
    assert text.endswith(f"{END}\n\n## Analysis\nkept\n")
    assert ("| reboot-first, 20 in 1 Region | 1 | documented | remediate | 20/20 | "
            in text)


def test_each_selection_of_scenarios_keeps_its_own_block(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    big = block_key(parse(["--sizes", "10000", "--tools", "remediate", "--jobs", "2"]))
    default = block_key(parse(["--sizes", "100,1000", "--results", str(results)]))
    assert (big, default) == ("--sizes 10000 --tools remediate", "")

    write_results(results, "cmd default", "env", "small figures", default)
    write_results(results, "cmd big", "env", "big figures", big)
    write_results(results, "cmd default again", "env", "new small figures", default)

    text = results.read_text()
    assert "small figures" not in text.replace("new small figures", "")
    assert "new small figures" in text and "big figures" in text
    start, end = markers(big)
    assert text.index(END) < text.index(start) < text.index("big figures") < text.index(end)


def test_playbook_parameters_go_to_the_playbooks_that_declare_them() -> None:
    args = parse(["--playbooks", "reboot-first", "--param", "status_timeout=2m"])

    given = dict(playbook_params(args))
    values = params_for(load("reboot-first"), {**given, "other": "x"})

    assert block_key(args) == "--playbooks reboot-first --param status_timeout=2m"
    assert values["status_timeout"] == "2m" and "other" not in values
    with pytest.raises(SystemExit):
        playbook_params(parse(["--param", "no_such_parameter=1"]))


def test_the_figures_name_the_runs_that_left_targets_unfixed() -> None:
    scenario = Scenario("reboot-first", 20)
    m = run(scenario, "remediate", Setup())
    partly = dataclasses.replace(m, tool="unpaced", statuses={"succeeded": 19, "failed": 1})

    body = render([m, partly], {scenario: bound(path_for(scenario, Durations()), 20)})

    assert "- reboot-first, 20 in 1 Region, unpaced: failed 1, succeeded 19" in body
    assert "reboot-first, 20 in 1 Region, remediate: failed" not in body


def test_the_playbooks_run_as_shipped_unless_one_batch_is_asked_for() -> None:
    shipped = load("offline-repair")
    args = parse([])

    as_run = prepare(shipped, setup_for(Scenario("offline-repair", 100), args, Durations()))
    one = prepare(shipped, setup_for(Scenario("offline-repair", 100), parse(["--one-batch"]),
                                     Durations()))

    # The canary, then the rest on a ramp: [1, 100%].
    assert [(b.count, b.percent) for b in shipped.guards.batches] == [(1, None), (None, 100.0)]
    assert shipped.guards.rollout == "ramp"
    assert as_run.guards.batches == shipped.guards.batches
    assert [b.percent for b in one.guards.batches] == [100.0]


def test_the_tuned_script_runs_once_per_n_and_the_table_keeps_its_best() -> None:
    scenario = Scenario("offline-repair", 20)
    args = parse(["--script-workers", "5,10,20"])
    jobs = jobs_for(scenario, ["remediate", "tuned-script", "ssm-automation"], Setup(), args,
                    Durations())
    reboot = jobs_for(Scenario("reboot-first", 20), ["remediate", "tuned-script"], Setup(), args,
                      Durations())
    m = run(Scenario("reboot-first", 3), "remediate", Setup())
    tried = [dataclasses.replace(m, scenario=scenario, tool="tuned-script", workers=n,
                                 fixed=fixed, makespan=makespan)
             for n, fixed, makespan in [(5, 20, 900.0), (10, 20, 600.0), (20, 15, 300.0)]]

    assert [(j.tool, j.workers) for j in jobs] == [
        ("remediate", 16), ("tuned-script", 5), ("tuned-script", 10), ("tuned-script", 20),
        ("ssm-automation", 16)]
    assert [j.tool for j in reboot] == ["remediate"]  # the scripts repair volumes only
    assert best_of(tried) == [tried[1]]  # all fixed, then the fastest


def test_json_holds_every_measurement_with_the_issues_keys(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"

    assert main(["--sizes", "3", "--playbooks", "reboot-first", "--tools", "remediate",
                 "--durations", "fixed", "--no-results", "--json", str(out)]) == 0

    [record] = json.loads(out.read_text())
    assert {"playbook", "targets", "places", "throttle_model", "tool", "makespan_s",
            "bound_s", "critical_path_s", "fixed", "throttled_calls", "calls"} <= set(record)
    assert (record["playbook"], record["targets"], record["places"], record["tool"]) == (
        "reboot-first", 3, 1, "remediate")
    assert record["throttle_model"] == "documented" and record["as_shipped"] is True
    assert record["fixed"] == 3 and record["makespan_s"] >= record["bound_s"] > 0
    assert record["critical_path_s"] == 240.0 and record["calls"] > 0


def test_a_fleet_over_several_accounts_is_fixed_in_each_of_them() -> None:
    scenario = Scenario("offline-repair", 8, regions=2, accounts=2)

    m = run(scenario, "remediate", Setup(rescue_per_az=1))

    assert (scenario.places, scenario.per_region) == (4, 2)
    assert [spec.account for spec in scenario.fleet_specs()] == list(scenario.account_ids)
    assert m.statuses == {"succeeded": 8}
    assert (m.fixed, m.rescue_left) == (8, 0)
    # The rescue image is resolved once per account and Region: 4 places.
    assert m.calls_by_api["ssm:GetParameter"] == 4
    assert scenario.label == "offline-repair, 8 in 2 accounts x 2 Regions"


def test_several_accounts_on_a_moving_clock_too() -> None:
    scenario = Scenario("offline-repair", 4, regions=1, accounts=2)

    m = run(scenario, "remediate", Setup(one_batch=True, rescue_per_az=1), speed=200)

    assert (m.fixed, m.rescue_left, m.throttled) == (4, 0, 0)
