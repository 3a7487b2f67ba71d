"""How long the sandbox's simulated AWS operations take, in clock seconds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Durations:
    """Simulated durations (seconds on the sandbox clock) of AWS state changes.

    Defaults are realistic for Windows on EC2 and WorkSpaces (see domain.md).
    """

    instance_start: float = 60.0
    """pending -> running."""
    instance_stop: float = 90.0
    """stopping -> stopped."""
    instance_boot: float = 60.0
    """Status checks stay ``initializing`` this long after a start or reboot."""
    reboot: float = 60.0
    """A reboot keeps the instance running but status ``initializing`` this long."""
    volume_attach: float = 5.0
    volume_detach: float = 10.0
    snapshot: float = 60.0
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

    @classmethod
    def instant(cls) -> Durations:
        """Every operation completes as soon as the clock moves by any amount."""
        return cls(**{name: 0.0 for name in cls.__dataclass_fields__})
