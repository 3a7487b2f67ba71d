"""The rehearsal's process: ``python -m remediate.forecast.child`` reads a
:class:`FleetModel` (JSON) on stdin and writes the :class:`Forecast` on stdout.

The parent (:func:`forecast`) gives it an environment with fake credentials and
without what could point boto3 elsewhere (``AWS_ENDPOINT_URL``, profiles): the
sandbox answers every request in that process, and none leaves it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Final

from remediate.forecast.model import FleetModel, Forecast, ForecastFailed

_KEPT: Final = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "PYTHONPATH", "SYSTEMROOT")
_SANDBOX_ENV: Final = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


def forecast(model: FleetModel) -> Forecast:
    """Rehearse ``model``'s run in a child process; its forecast."""
    env = {k: v for k, v in os.environ.items() if k in _KEPT} | _SANDBOX_ENV
    try:
        done = subprocess.run([sys.executable, "-m", "remediate.forecast.child"],
                              input=model.to_json(), capture_output=True, text=True, env=env,
                              check=False)
    except OSError as exc:
        raise ForecastFailed(f"could not start the rehearsal: {exc}") from exc
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit code {done.returncode}"]
        raise ForecastFailed(lines[-1])
    return Forecast.from_json(done.stdout)


def main() -> int:
    try:
        from remediate.forecast.rehearsal import rehearse
    except ImportError as exc:  # moto is the `sandbox` extra
        print(f"the rehearsal needs the sandbox (pip install 'remediate[sandbox]'): {exc}",
              file=sys.stderr)
        return 1
    try:
        found = rehearse(FleetModel.from_json(sys.stdin.read()))
    except Exception as exc:  # the parent shows one line and falls back to the rates
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(found.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
