"""How long the sandbox's simulated AWS operations take, in clock seconds.

Two models. :class:`Durations` as constructed is *fixed*: every instance boots in the
same 60 s, every snapshot completes in 60 s; tests rely on that. ``Durations.realistic()``
spreads the durations AWS does not control tightly over seeded ranges (see
:data:`REALISTIC_SPREADS` for each figure and where it comes from). A draw is a pure
function of (seed, what, resource id), never of call order, so a run with threads gives
every resource the same duration each time, and the benchmark's bound can compute each
target's own durations (:meth:`Durations.for_target`) from the fleet it built.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

Range = tuple[float, float]
"""Uniform between the two figures (seconds, or seconds per GiB for ``snapshot_per_gib``)."""

REALISTIC_SPREADS: Final[Mapping[str, Range]] = {
    # Windows "usually take 2-5 minutes to pass status checks after start" (domain.md;
    # AWS: a start takes "a few minutes"): pending -> running, then status checks
    # initializing; the two together span 120-300 s.
    "instance_start": (20.0, 60.0),
    "instance_boot": (100.0, 240.0),
    "reboot": (120.0, 300.0),
    # A Windows guest that answers the ACPI shutdown stops in about a minute or two.
    "instance_stop": (30.0, 120.0),
    # A crash-looping guest never answers the graceful shutdown: the stop waits out EC2's
    # shutdown timeout, then forces (StopInstances API reference, ``Force``: "If the
    # graceful shutdown fails to complete within the timeout period, the instance shuts
    # down forcibly"). AWS publishes no figure for that period; 4-12 min is an inference
    # ("15-20 minutes means stuck", domain.md).
    "instance_stop_stuck": (240.0, 720.0),
    # StopInstances ``SkipOsShutdown``: "bypass the graceful OS shutdown process".
    "instance_stop_skip_os": (15.0, 45.0),
    # "Attach/detach latency is not published (seconds to tens of seconds)".
    "volume_attach": (3.0, 10.0),
    "volume_detach": (5.0, 20.0),
    # A first snapshot copies every block: "it remains in the pending state until all of
    # data has been transferred to Amazon S3. This can take several hours to complete,
    # depending on the number of modified blocks on the volume" (EBS user guide, Create
    # Amazon EBS snapshots); "There's no way to predict EBS snapshot creation time"
    # (re:Post knowledge center, ebs-incremental-snapshot-creation-slow). 6-20 s per GiB
    # (a 30 GiB root: 3-10 min, 100 GiB: 10-33 min) is an inference.
    "snapshot": (10.0, 30.0),
    "snapshot_per_gib": (6.0, 20.0),
    "ssm_command": (20.0, 60.0),
}


def _unit(seed: int, what: str, key: str) -> float:
    """A number in [0, 1) fixed by its arguments (not Python's salted ``hash``)."""
    digest = hashlib.blake2b(f"{seed}\0{what}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class Durations:
    """Simulated durations (seconds on the sandbox clock) of AWS state changes.

    Each field is the fixed figure; a name in ``spreads`` is drawn instead
    (:meth:`draw`). Defaults are the fixed figures the tests are written against.
    """

    instance_start: float = 60.0
    """pending -> running."""
    instance_stop: float = 90.0
    """stopping -> stopped, for a guest that shuts down."""
    instance_stop_stuck: float = 90.0
    """stopping -> stopped for a guest that is crash-looping (status ``impaired``): it
    never answers the graceful shutdown, so EC2 waits out its timeout."""
    instance_stop_skip_os: float = 15.0
    """stopping -> stopped when StopInstances says ``SkipOsShutdown``: no guest shutdown
    to wait for, whatever the guest does ("Methods for stopping an instance", AWS EC2
    user guide, publishes no figure; seconds is an inference)."""
    instance_boot: float = 60.0
    """Status checks stay ``initializing`` this long after a start or reboot."""
    reboot: float = 60.0
    """A reboot keeps the instance running but status ``initializing`` this long."""
    volume_attach: float = 5.0
    volume_detach: float = 10.0
    snapshot: float = 60.0
    """pending -> completed, plus ``snapshot_per_gib`` x the volume's size for the first
    snapshot of a volume."""
    snapshot_per_gib: float = 0.0
    snapshot_incremental: float = 1.0
    """A later snapshot of the same volume copies only changed blocks: it takes this
    share of a first one."""
    ssm_command: float = 20.0
    replace_root_pending: float = 10.0
    replace_root: float = 120.0
    workspace_reboot: float = 300.0
    workspace_start: float = 180.0
    workspace_stop: float = 120.0
    workspace_restore: float = 1200.0
    """AWS publishes no figure for a restore; it recreates both volumes, as a rebuild does."""
    workspace_rebuild: float = 2400.0
    """"The rebuild process might take up to an hour" (WorkSpaces user guide, Rebuild)."""
    workspace_stuck_reboot: float = 1200.0
    """A WorkSpace REBOOTING for over this long is stuck and may be rebooted again
    (RebootWorkspaces API reference: "stuck in the REBOOTING state for over 20 minutes")."""
    listing_lag: float = 0.0
    """A new snapshot or SSM command shows in listings (DescribeSnapshots without ids,
    ListCommandInvocations) only this long after it was created: AWS's APIs are eventually
    consistent ("Eventual consistency in the Amazon EC2 API"), reads by id are not delayed."""
    spreads: Mapping[str, Range] = field(default_factory=dict)
    """Field name -> the range its draws are spread over; empty: every figure is fixed."""
    seed: int = 0

    @classmethod
    def instant(cls) -> Durations:
        """Every operation completes as soon as the clock moves by any amount."""
        zero: dict[str, Any] = {name: 0.0 for name in _FIGURES}
        return cls(**zero)

    @classmethod
    def realistic(cls, seed: int = 0) -> Durations:
        """Durations spread as AWS's are (:data:`REALISTIC_SPREADS`); later snapshots of a
        volume are incremental (a tenth of a first one: the repair changes few blocks)."""
        return cls(spreads=dict(REALISTIC_SPREADS), seed=seed, snapshot_incremental=0.1)

    def draw(self, what: str, key: str) -> float:
        """The duration of ``what`` (a field name) for the resource ``key``."""
        spread = self.spreads.get(what)
        if spread is None:
            return float(getattr(self, what))
        low, high = spread
        return low + (high - low) * _unit(self.seed, what, key)

    def typical(self, what: str) -> float:
        """The middle of ``what``'s spread (its fixed figure if it has none): for sizing
        things ahead of a run, as the benchmark sizes rescue pools."""
        spread = self.spreads.get(what)
        return float(getattr(self, what)) if spread is None else sum(spread) / 2

    def stop(self, instance_id: str, *, stuck: bool, skip_os: bool = False) -> float:
        """stopping -> stopped for this instance (see the three ``instance_stop*`` fields)."""
        what = ("instance_stop_skip_os" if skip_os
                else "instance_stop_stuck" if stuck else "instance_stop")
        return self.draw(what, instance_id)

    def snapshot_of(self, volume_id: str, size_gib: float, *, first: bool) -> float:
        """pending -> completed for a snapshot of this volume (``first``: the volume has
        no earlier snapshot, so every block is copied)."""
        seconds = (self.draw("snapshot", volume_id)
                   + self.draw("snapshot_per_gib", volume_id) * size_gib)
        return seconds if first else seconds * self.snapshot_incremental

    def for_target(self, instance_id: str, volume_id: str, size_gib: float, *,
                   stuck: bool) -> Durations:
        """Fixed durations equal to what the sandbox draws for this instance and its root
        volume (a first snapshot; both stops, the graceful one as ``stuck`` says): one
        target's figures, for a bound computed over the targets of a run."""
        by_instance: dict[str, Any] = {name: self.draw(name, instance_id)
                                       for name in ("instance_start", "instance_boot", "reboot")}
        by_volume: dict[str, Any] = {name: self.draw(name, volume_id) for name in
                                     ("volume_attach", "volume_detach", "ssm_command")}
        return dataclasses.replace(
            self, spreads={}, **by_instance, **by_volume,
            instance_stop=self.stop(instance_id, stuck=stuck),
            instance_stop_skip_os=self.stop(instance_id, stuck=stuck, skip_os=True),
            snapshot=self.snapshot_of(volume_id, size_gib, first=True),
            snapshot_per_gib=0.0)


_FIGURES: Final = tuple(f.name for f in dataclasses.fields(Durations)
                        if f.name not in ("spreads", "seed"))
