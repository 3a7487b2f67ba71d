"""``python -m remediate.sandbox --port P --fleet N [--clock-factor F] [--stepfunctions]
[--lose-replies P --seed S] [--throttle MODEL [--neighbour SHARE]]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from remediate.errors import UserError
from remediate.sandbox.fleet import FleetSpec
from remediate.sandbox.server import serve
from remediate.sandbox.state import LostReplies
from remediate.sandbox.throttling import MODELS, Neighbour, ThrottlePolicy


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m remediate.sandbox",
        description="Serve a realistic moto sandbox with a broken fleet on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: a free one)")
    parser.add_argument("--fleet", type=int, default=10, help="number of plain targets")
    parser.add_argument("--workspaces", type=int, default=0, help="number of WorkSpaces")
    parser.add_argument("--azs", type=int, default=2, help="Availability Zones to spread over")
    parser.add_argument(
        "--clock-factor", type=float, default=1.0, help="simulated seconds per real second"
    )
    parser.add_argument("--stepfunctions", action="store_true",
                        help="moto's interpreter executes Step Functions state machines")
    parser.add_argument("--lose-replies", type=float, default=None, metavar="PROBABILITY",
                        help="each mutating call takes effect, then loses its reply (a 500) "
                             "with this probability")
    parser.add_argument("--seed", type=int, default=0, help="seed of --lose-replies")
    parser.add_argument("--throttle", choices=MODELS, default=None,
                        help="throttle EC2 with AWS's buckets under this model")
    parser.add_argument("--neighbour", type=float, default=0.0, metavar="SHARE",
                        help="with --throttle: another tool spends this share of each bucket")
    args = parser.parse_args(argv)
    spec = FleetSpec(plain=args.fleet, workspaces=args.workspaces, azs=args.azs)
    try:
        lost = (None if args.lose_replies is None
                else LostReplies(args.lose_replies, args.seed))
    except ValueError as exc:
        parser.error(f"--lose-replies: {exc}")
    try:
        neighbour = Neighbour(args.neighbour) if args.neighbour else None
    except ValueError as exc:
        parser.error(f"--neighbour: {exc}")
    throttle = (None if args.throttle is None
                else ThrottlePolicy.aws_defaults(model=args.throttle, neighbour=neighbour))
    try:
        return serve(args.port, spec, clock_factor=args.clock_factor,
                     stepfunctions=args.stepfunctions, lost_replies=lost, throttle=throttle)
    except UserError as exc:  # a port in use: one line, as `remediate sandbox serve` says it
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
