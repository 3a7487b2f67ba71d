"""Exit codes, one place. Documented in `remediate --help` and the README."""

from __future__ import annotations

from typing import Final

from remediate.errors import UserError

OK: Final = 0  # every target succeeded, or the dry run found nothing blocking
USAGE: Final = 1  # usage or playbook error (nothing was changed in AWS)
# some targets failed or were refused, or were not run because the operator said no after
# the canary batch or because a --stop-on-alarm alarm fired (dry run: or a permission was
# denied); readiness: a check failed
TARGETS_FAILED: Final = 2
UNEXPECTED: Final = 3  # a bug or an environment we did not foresee; see the crash log
INTERRUPTED: Final = 130  # Ctrl-C

EPILOG: Final = (
    "Exit codes: 0 every target succeeded (or the dry run found nothing blocking); "
    "1 usage or playbook error; 2 some targets failed or were refused, or were left "
    "when the canary was not confirmed or a --stop-on-alarm alarm fired (a dry run: or an "
    "IAM permission was denied; readiness: a check failed); "
    "3 unexpected error (a crash log is written); 130 interrupted."
)

__all__ = ["EPILOG", "INTERRUPTED", "OK", "TARGETS_FAILED", "UNEXPECTED", "USAGE", "UserError"]
