"""How close a fleet run gets to AWS's API limits (issue 6).

    python benchmarks/fleet_bench.py                      # 100 and 1,000 targets
    python benchmarks/fleet_bench.py --sizes 100,1000,10000 --multi-region

For each playbook (offline repair, reboot first) and fleet size, builds a broken
fleet in the sandbox (AWS's EC2 token buckets answering RequestLimitExceeded,
realistic durations, a VirtualClock by default), fixes it with remediate and with
two baselines (one target at a time; unpaced calls relying on retries alone),
and prints: makespan against the lower bound (README.md says how it is computed),
API calls per target and the throttled share, CPU seconds per 1,000 targets
(remediate's and botocore's, apart from moto's), peak memory. The figures and this
command go into benchmarks/RESULTS.md, in the generated block for this run's options
(one block per selection, so runs of other sizes keep theirs).
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import platform
import shlex
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from fleetbench.bound import Bound, bound, path_for, throughput
from fleetbench.report import render, write_results
from fleetbench.runner import TOOLS, Measurement, Tool, run
from fleetbench.scenarios import (
    PLAYBOOK_FILES,
    REGIONS,
    Scenario,
    Setup,
    load,
    rescue_per_az,
)
from remediate.sandbox import Durations

HERE = Path(__file__).resolve().parent


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="100,1000",
                        help="fleet sizes in one Region (default: 100,1000; 10000 takes "
                             "10-25 min per playbook and tool)")
    parser.add_argument("--multi-region", action="store_true",
                        help=f"also 1,000 targets over {len(REGIONS)} Regions")
    parser.add_argument("--playbooks", default=",".join(PLAYBOOK_FILES))
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--sample", type=int, default=20,
                        help="targets one-at-a-time really runs (then extrapolated); "
                             "0: the whole fleet")
    parser.add_argument("--rescue-per-az", default="shipped",
                        help="offline repair: rescue instances per AZ: shipped (the "
                             "playbook's, default), auto (sized from the EC2 buckets), or a "
                             "number")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="override the playbook's execution.concurrency")
    parser.add_argument("--keep-canary", action="store_true",
                        help="keep the playbook's canary batches (barriers)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a playbook parameter, as `remediate run --param` sets it "
                             "(given to the playbooks that declare it; repeatable)")
    parser.add_argument("--reboots-to-fix", type=int, default=2,
                        help="reboot-first: reboots each instance needs (default 2)")
    parser.add_argument("--speed", type=float, default=0.0,
                        help="0: VirtualClock (discrete-event, default); N: ScaledClock(N)")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md",
                        help="where to keep the figures (default benchmarks/RESULTS.md)")
    parser.add_argument("--no-results", action="store_true", help="print only")
    parser.add_argument("--jobs", type=int, default=1,
                        help="measurements run at once, each in its own process (default "
                             "1; simulated figures do not depend on it, wall times do)")
    return parser.parse_args(argv)


_NOT_IN_KEY: Final = frozenset({"results", "no_results", "jobs"})
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
    for name in _csv(args.playbooks):
        if name not in PLAYBOOK_FILES:
            raise SystemExit(f"unknown playbook {name!r}; known: {', '.join(PLAYBOOK_FILES)}")
        found += [Scenario(name, int(size), reboots_to_fix=args.reboots_to_fix)
                  for size in _csv(args.sizes)]
        if args.multi_region:
            found.append(Scenario(name, 1000, len(REGIONS), args.reboots_to_fix))
    return found


def setup_for(scenario: Scenario, args: argparse.Namespace, durations: Durations) -> Setup:
    per_az: int | None = None
    if scenario.playbook == "offline-repair" and args.rescue_per_az != "shipped":
        if args.rescue_per_az == "auto":
            rate = throughput(path_for(scenario, durations))
            poll = load(scenario.playbook).execution.poll_interval
            per_az = rescue_per_az(durations, poll, rate)
        else:
            per_az = int(args.rescue_per_az)
    return Setup(args.keep_canary, args.concurrency, per_az, playbook_params(args))


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


def measure(job: Job) -> Measurement:
    """One measurement (run in a fresh process: CPU and memory figures are its own)."""
    return run(job.scenario, job.tool, job.setup, speed=job.speed, sample=job.sample)


def _cost(job: Job) -> int:
    """Roughly how long a job takes, to start the longest first."""
    size = job.sample if job.tool == "one-at-a-time" else job.scenario.targets
    return size * (4 if job.scenario.playbook == "offline-repair" else 1)


def measure_all(jobs: list[Job], processes: int) -> list[Measurement]:
    """Every job in its own child process, ``processes`` at a time; results in job order."""
    context = multiprocessing.get_context("spawn")
    results: dict[int, Measurement] = {}
    with ProcessPoolExecutor(processes, mp_context=context, max_tasks_per_child=1) as pool:
        order = sorted(range(len(jobs)), key=lambda i: -_cost(jobs[i]))
        futures = {pool.submit(measure, jobs[i]): i for i in order}
        for future in as_completed(futures):
            m = results[futures[future]] = future.result()
            print(f"... {m.scenario.label}, {m.tool}: {m.makespan:,.0f} s simulated, "
                  f"{m.fixed:,}/{m.targets:,} fixed, {m.wall:.0f} s wall (fleet built in "
                  f"{m.build_seconds:.0f} s)", file=sys.stderr, flush=True)
    return [results[i] for i in range(len(jobs))]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    durations = Durations()
    tools: list[Tool] = [t for t in TOOLS if t in _csv(args.tools)]
    bounds: dict[Scenario, Bound] = {}
    setups: dict[Scenario, Setup] = {}
    jobs: list[Job] = []
    for scenario in scenarios(args):
        bounds[scenario] = bound(path_for(scenario, durations), scenario.per_region)
        setups[scenario] = setup_for(scenario, args, durations)
        jobs += [Job(scenario, tool, setups[scenario],
                     args.sample if args.sample > 0 else scenario.targets, args.speed)
                 for tool in tools]
    body = render(measure_all(jobs, args.jobs), bounds)
    rescue = [f"{s.label}: rescue instances per AZ {setup.rescue_per_az or 'as shipped'}"
              for s, setup in setups.items() if s.playbook == "offline-repair"]
    body += ("\n\nSettings: " + ("canary batches as shipped" if args.keep_canary
                                  else "one rollout batch")
             + "; concurrency " + (str(args.concurrency) if args.concurrency else "as shipped")
             + "".join(f"; parameter {name}={value}" for name, value in playbook_params(args))
             + "".join(f"; {line}" for line in rescue))
    print(body)
    if not args.no_results:
        command = "python benchmarks/fleet_bench.py " + shlex.join(argv or sys.argv[1:])
        write_results(args.results, command.strip(), environment(args.speed), body,
                      block_key(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
