"""`remediate ARGS` with the tool's clock running at the sandbox server's pace.

Run as ``python scaled_remediate.py ARGS`` with REMEDIATE_TEST_CLOCK_FACTOR=F (the
server's ``--clock-factor``): the command is the real one (`remediate.cli.main`),
only the `Environment` its commands build uses ``ScaledClock(F)`` instead of the
real clock, so a 15-second poll takes 15/F real seconds, like the server's
state changes.
"""

from __future__ import annotations

import os
import sys

from remediate.cli import launch, resume
from remediate.cli.main import main
from remediate.clock import ScaledClock

CLOCK = ScaledClock(float(os.environ["REMEDIATE_TEST_CLOCK_FACTOR"]))
Environment = launch.Environment


def scaled_environment() -> launch.Environment:
    return Environment(clock=CLOCK)


if __name__ == "__main__":
    launch.Environment = scaled_environment  # type: ignore[assignment,misc]
    resume.Environment = scaled_environment  # type: ignore[assignment,misc]
    raise SystemExit(main(sys.argv[1:]))
