"""How many I/O threads a run gets: a share per (account, Region) place, with a cap.

Each (account, Region) has its own AWS buckets, so a run over many places can keep
many more calls in flight than one over a single place; a fixed pool sized for one
place (16) made the threads, not AWS, the limit of a run over 20 accounts x 3 Regions.
So the pool grows by :data:`PER_PLACE` threads per place the run has targets in, up
to :data:`CAP` (past that, the tool's own CPU per call binds before threads do, and
each thread costs a stack). ``REMEDIATE_IO_WORKERS=N`` sets it outright.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Final

from remediate.actions.contract import Target
from remediate.errors import UserError

PER_PLACE: Final = 16
"""Threads per (account, Region): one place's calls in flight at its buckets' pace
(tens a second, each a few hundred milliseconds long) stay well under it."""
CAP: Final = 256
VARIABLE: Final = "REMEDIATE_IO_WORKERS"


def places(targets: Iterable[Target]) -> int:
    """The (account, Region) places ``targets`` are in (at least one)."""
    return max(1, len({(t.account, t.region) for t in targets}))


def io_workers(targets: Iterable[Target], environ: Mapping[str, str] = os.environ) -> int:
    """I/O threads for a run over ``targets`` (see the module docstring)."""
    given = environ.get(VARIABLE, "").strip()
    if not given:
        return min(CAP, PER_PLACE * places(targets))
    try:
        workers = int(given)
    except ValueError:
        workers = 0
    if workers < 1:
        raise UserError(f"{VARIABLE}={given!r}: expected a whole number of I/O threads, at "
                        f"least 1 (hint: unset it for {PER_PLACE} per account and Region, "
                        f"up to {CAP})")
    return workers
