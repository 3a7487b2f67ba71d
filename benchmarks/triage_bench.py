"""How long `remediate triage` takes on a sandbox fleet, within AWS's EC2 buckets.

    python benchmarks/triage_bench.py --instances 1000
    python benchmarks/triage_bench.py --instances 10000

Builds a fleet in the in-process sandbox (mostly incident boot loops, some healthy, some
broken otherwise) with AWS's EC2 token buckets enforced (RequestLimitExceeded), on a
virtual clock, runs the triage as shipped (text report to /dev/null) and prints the
virtual time it took (what AWS's buckets allow: GetConsoleOutput and
GetConsoleScreenshot, one instance a call, each from its own 100-token bucket refilled
at 20 a second, bound it at (N - 100) / 20 s), the wall time (moto's own cost), the
calls made and how many AWS throttled.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import time

from remediate.cli.launch import Environment
from remediate.cli.options import TargetArgs
from remediate.cli.triage_run import TriageRequest, run_triage
from remediate.clock import VirtualClock
from remediate.sandbox import FleetSpec, Sandbox, ThrottlePolicy

BURST, REFILL = 100, 20  # a non-mutating EC2 API's bucket (remediate.aws.apis)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    args = parser.parse_args()
    n = args.instances
    healthy, other = n // 10, n // 20
    spec = FleetSpec(plain=n - healthy - 2 * other, healthy=healthy, boot_loop_other=other,
                     black_screen=other, azs=2)
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1")
    clock = VirtualClock()
    with Sandbox(clock=clock) as sandbox:
        sandbox.build_fleet(spec)
        sandbox.set_throttle(ThrottlePolicy(ec2_defaults=True))
        env = Environment(clock=clock, session=sandbox.boto3_session(), interactive=False)
        started, wall = clock.now(), time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            code = run_triage(TriageRequest(TargetArgs(), kind="ec2-instance"), env)
        wall = time.perf_counter() - wall
        calls = sandbox.api_call_counts()
        throttled = sum(sandbox.api_call_counts(throttled=True).values())
    print(f"{n} instances: exit {code}, virtual {clock.now() - started:.1f} s "
          f"(bound {max(0, n - BURST) / REFILL:.1f} s), wall {wall:.1f} s, "
          f"{sum(calls.values())} calls, {throttled} throttled")
    for (service, operation), count in sorted(calls.items()):
        print(f"  {service}.{operation}: {count}")


if __name__ == "__main__":
    main()
