"""The sandbox fleets the demo and `sandbox serve` build."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from remediate.sandbox import FleetSpec


def demo_spec(plain: int = 12, workspaces: int = 6, pitfalls: bool = True,
              reboot_fixable: int = 4, dhmc: bool = True) -> FleetSpec:
    """A realistic broken fleet: plain Windows, the pitfalls, some fixed by reboots; with
    Default Host Management Configuration on (``dhmc``) unless told otherwise."""
    from remediate.sandbox import FleetSpec

    one = 1 if pitfalls else 0
    return FleetSpec(plain=plain, instance_store=one, spot_one_time=one, stop_protected=one,
                     encrypted_bad_key=one, marketplace=one, hibernation=one,
                     reboot_fixable=reboot_fixable, with_eip=min(2, plain),
                     workspaces=workspaces, azs=2, dhmc=dhmc)
