"""How close a fleet run gets to AWS's API limits (issue 6).

    python benchmarks/fleet_bench.py                      # 100 and 1,000 targets
    python benchmarks/fleet_bench.py --sizes 100,1000,10000 --multi-region

For each playbook (offline repair, reboot first) and fleet size, builds a broken
fleet in the sandbox (AWS's EC2 token buckets answering RequestLimitExceeded under a
throttle model, realistic durations, a simulated clock by default), fixes it with
remediate as shipped (the playbook's own batches and canary) and with the honest
baselines (a tuned boto3 script, its N tried and the best kept; a model of SSM
Automation's route), and prints: makespan against the lower bound (README.md says
how it is computed), API calls per target and the throttled share, CPU seconds per
1,000 targets (remediate's and botocore's, apart from moto's), peak memory. The
figures and this command go into benchmarks/RESULTS.md, in the generated block for
this run's options (one block per selection, so runs of other sizes keep theirs);
``--json PATH`` writes them as JSON too.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import shlex
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from fleetbench.bound import Bound, bound, charges_for, path_for, throughput
from fleetbench.report import record, render, tool_name, write_results
from fleetbench.runner import DEFAULT_TOOLS, SCRIPTS, TOOLS, Measurement, Tool, run
from fleetbench.scenarios import (
    PLAYBOOK_FILES,
    REGIONS,
    Scenario,
    Setup,
    load,
    rescue_per_az,
)
from remediate.sandbox import Durations
from remediate.sandbox.throttling import MODELS

HERE = Path(__file__).resolve().parent
MULTI_ACCOUNTS: Final = 20
"""Accounts of the ``--multi-account`` scenario (issue 15: 20 accounts x 3 Regions)."""


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="100,1000",
                        help="fleet sizes in one Region (default: 100,1000; 10000 takes "
                             "10-25 min per playbook and tool)")
    parser.add_argument("--multi-region", action="store_true",
                        help=f"also 1,000 targets over {len(REGIONS)} Regions")
    parser.add_argument("--multi-account", type=int, default=0, metavar="N",
                        help=f"also N targets over {MULTI_ACCOUNTS} sandbox accounts x "
                             f"{len(REGIONS)} Regions (offline repair; remediate only)")
    parser.add_argument("--playbooks", default=",".join(PLAYBOOK_FILES))
    parser.add_argument("--tools", default=",".join(DEFAULT_TOOLS),
                        help=f"of {', '.join(TOOLS)} (default: {', '.join(DEFAULT_TOOLS)})")
    parser.add_argument("--script-workers", default="10,25,50,100",
                        help="the tuned script's worker threads to try; the best is shown "
                             "(default: 10,25,50,100)")
    parser.add_argument("--sample", type=int, default=20,
                        help="targets one-at-a-time really runs (then extrapolated); "
                             "0: the whole fleet")
    parser.add_argument("--rescue-per-az", default="shipped",
                        help="offline repair: rescue instances per AZ: shipped (the "
                             "playbook's, default), auto (sized from the EC2 buckets), or a "
                             "number")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="override the playbook's execution.concurrency")
    parser.add_argument("--one-batch", action="store_true",
                        help="replace the playbook's rollout batches by one (default: as "
                             "shipped, canary included)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a playbook parameter, as `remediate run --param` sets it "
                             "(given to the playbooks that declare it; repeatable)")
    parser.add_argument("--throttle-model", default="documented",
                        help="how the sandbox shares EC2's buckets, comma-separated to run "
                             "each: documented (a bucket per API, as AWS's page says; "
                             "default) or shared-category (one per category, the older "
                             "reading)")
    parser.add_argument("--neighbour", type=float, default=0.0, metavar="SHARE",
                        help="another tool in the account spends this share of every EC2 "
                             "bucket's refill (e.g. 0.3; default 0)")
    parser.add_argument("--reboots-to-fix", type=int, default=2,
                        help="reboot-first: reboots each instance needs (default 2)")
    parser.add_argument("--durations", choices=("realistic", "fixed"), default="realistic",
                        help="how long AWS takes: realistic (seeded spreads, default) or "
                             "fixed (every boot 60 s, every snapshot 60 s: the old model)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the realistic durations (default 0)")
    parser.add_argument("--speed", type=float, default=0.0,
                        help="0: VirtualClock (discrete-event, default); N: ScaledClock(N)")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md",
                        help="where to keep the figures (default benchmarks/RESULTS.md)")
    parser.add_argument("--no-results", action="store_true", help="print only")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write every measurement as JSON to PATH")
    parser.add_argument("--jobs", type=int, default=1,
                        help="measurements run at once, each in its own process (default "
                             "1; simulated figures do not depend on it, wall times do)")
    return parser.parse_args(argv)


_NOT_IN_KEY: Final = frozenset({"results", "no_results", "jobs", "json"})
"""Options that change where the figures go or how fast they come, not the figures."""


def block_key(args: argparse.Namespace) -> str:
    """The run's options that differ from the defaults and change the figures: which
    block of RESULTS.md its figures replace ("" for the default run)."""
    defaults = vars(parse([]))
    parts = []
    for name, value in vars(args).items():
        if name in _NOT_IN_KEY or value == defaults[name]:
            continue
        option = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(option)
        elif isinstance(value, list):
            parts += [f"{option} {shlex.quote(str(item))}" for item in value]
        else:
            parts.append(f"{option} {shlex.quote(str(value))}")
    return " ".join(parts)


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    found = []
    models = _csv(args.throttle_model)
    for model in models:
        if model not in MODELS:
            raise SystemExit(f"unknown throttle model {model!r}; known: "
                             f"{', '.join(MODELS)}")
    for name in _csv(args.playbooks):
        if name not in PLAYBOOK_FILES:
            raise SystemExit(f"unknown playbook {name!r}; known: {', '.join(PLAYBOOK_FILES)}")
        for model in models:
            found += [Scenario(name, int(size), reboots_to_fix=args.reboots_to_fix,
                               throttle_model=model, neighbour=args.neighbour)
                      for size in _csv(args.sizes)]
            if args.multi_region:
                found.append(Scenario(name, 1000, len(REGIONS), args.reboots_to_fix,
                                      throttle_model=model, neighbour=args.neighbour))
            if args.multi_account and name == "offline-repair":
                found.append(Scenario(name, args.multi_account, len(REGIONS),
                                      args.reboots_to_fix, throttle_model=model,
                                      neighbour=args.neighbour, accounts=MULTI_ACCOUNTS))
    return found


def setup_for(scenario: Scenario, args: argparse.Namespace, durations: Durations) -> Setup:
    per_az: int | None = None
    if scenario.playbook == "offline-repair" and args.rescue_per_az != "shipped":
        if args.rescue_per_az == "auto":
            rate = throughput(path_for(scenario, durations), charges_for(scenario))
            poll = load(scenario.playbook).execution.poll_interval
            per_az = rescue_per_az(durations, poll, rate)
        else:
            per_az = int(args.rescue_per_az)
    return Setup(args.one_batch, args.concurrency, per_az, playbook_params(args))


def playbook_params(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    """``--param NAME=VALUE`` options; each must be declared by a selected playbook."""
    found = []
    declared = {name for playbook in _csv(args.playbooks) if playbook in PLAYBOOK_FILES
                for name in load(playbook).parameters}
    for text in args.param:
        name, sep, value = text.partition("=")
        if not sep or name.strip() not in declared:
            raise SystemExit(f"--param {text!r}: expected NAME=VALUE with NAME a parameter "
                             f"of the playbooks run ({', '.join(sorted(declared))})")
        found.append((name.strip(), value.strip()))
    return tuple(found)


def environment(speed: float) -> str:
    import moto

    clock = f"ScaledClock({speed:g})" if speed > 0 else "VirtualClock"
    return (f"{datetime.date.today().isoformat()}, Python {platform.python_version()}, "
            f"moto {moto.__version__}, {os.cpu_count()} CPUs ({platform.machine()}), {clock}")


@dataclass(frozen=True)
class Job:
    scenario: Scenario
    tool: Tool
    setup: Setup
    sample: int
    speed: float
    durations: Durations
    workers: int = 16
    """The executor's I/O threads, or the tuned script's N."""


def measure(job: Job) -> Measurement:
    """One measurement (run in a fresh process: CPU and memory figures are its own)."""
    return run(job.scenario, job.tool, job.setup, speed=job.speed, sample=job.sample,
               durations=job.durations, workers=job.workers)


def _cost(job: Job) -> int:
    """Roughly how long a job takes, to start the longest first."""
    size = job.sample if job.tool == "one-at-a-time" else job.scenario.targets
    return size * (4 if job.scenario.playbook == "offline-repair" else 1)


def jobs_for(scenario: Scenario, tools: list[Tool], setup: Setup,
             args: argparse.Namespace, durations: Durations) -> list[Job]:
    """The measurements of one scenario: each tool once, the tuned script once per N.
    The scripts repair volumes in one account: they run on single-account offline-repair
    scenarios only."""
    sample = args.sample if args.sample > 0 else scenario.targets
    found = []
    for tool in tools:
        if tool in SCRIPTS and (scenario.playbook != "offline-repair" or scenario.accounts > 1):
            continue
        counts = [int(n) for n in _csv(args.script_workers)] if tool == "tuned-script" else [16]
        found += [Job(scenario, tool, setup, sample, args.speed, durations, n)
                  for n in counts]
    return found


def measure_all(jobs: list[Job], processes: int) -> list[Measurement]:
    """Every job in its own child process, ``processes`` at a time; results in job order."""
    context = multiprocessing.get_context("spawn")
    results: dict[int, Measurement] = {}
    with ProcessPoolExecutor(processes, mp_context=context, max_tasks_per_child=1) as pool:
        order = sorted(range(len(jobs)), key=lambda i: -_cost(jobs[i]))
        futures = {pool.submit(measure, jobs[i]): i for i in order}
        for future in as_completed(futures):
            m = results[futures[future]] = future.result()
            print(f"... {m.scenario.label}, {tool_name(m)}: {m.makespan:,.0f} s simulated, "
                  f"{m.fixed:,}/{m.targets:,} fixed, {m.wall:.0f} s wall (fleet built in "
                  f"{m.build_seconds:.0f} s)", file=sys.stderr, flush=True)
    return [results[i] for i in range(len(jobs))]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    durations = (Durations.realistic(args.seed) if args.durations == "realistic"
                 else Durations())
    tools: list[Tool] = [t for t in TOOLS if t in _csv(args.tools)]
    bounds: dict[Scenario, Bound] = {}
    setups: dict[Scenario, Setup] = {}
    jobs: list[Job] = []
    for scenario in scenarios(args):
        bounds[scenario] = bound(path_for(scenario, durations), scenario.per_region,
                                 charges_for(scenario))
        setups[scenario] = setup_for(scenario, args, durations)
        jobs += jobs_for(scenario, tools, setups[scenario], args, durations)
    measured = measure_all(jobs, args.jobs)
    # Drawn durations: each run's fleet has its own (its rows use their own bound);
    # the bound lines show the first full run's.
    for m in reversed(measured):
        bounds[m.scenario] = m.bound or bounds[m.scenario]
    body = render(measured, bounds)
    rescue = [f"{s.label}: rescue instances per AZ {setup.rescue_per_az or 'as shipped'}"
              for s, setup in setups.items() if s.playbook == "offline-repair"]
    body += ("\n\nSettings: " + ("one rollout batch (not as shipped)" if args.one_batch
                                  else "rollout batches and canary as shipped")
             + f"; {args.durations} durations"
             + (f" (seed {args.seed})" if args.durations == "realistic" else "")
             + "; concurrency " + (str(args.concurrency) if args.concurrency else "as shipped")
             + "".join(f"; parameter {name}={value}" for name, value in playbook_params(args))
             + "".join(f"; {line}" for line in rescue))
    print(body)
    if args.json is not None:
        args.json.write_text(json.dumps(
            [record(m, m.bound or bounds[m.scenario]) for m in measured], indent=2) + "\n")
    if not args.no_results:
        command = "python benchmarks/fleet_bench.py " + shlex.join(argv or sys.argv[1:])
        write_results(args.results, command.strip(), environment(args.speed), body,
                      block_key(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
