"""The sandbox: moto made realistic, for tests, demos, rehearsals and benchmarks.

>>> from remediate.clock import VirtualClock
>>> with Sandbox(clock=VirtualClock()) as sb:            # doctest: +SKIP
...     fleet = sb.build_fleet(FleetSpec(plain=8, workspaces=4))
...     ec2 = sb.client("ec2")
"""

from __future__ import annotations

from remediate.sandbox.core import Sandbox
from remediate.sandbox.durations import Durations
from remediate.sandbox.fleet import Fleet, FleetSpec, RegionSetup, Target, Workspace
from remediate.sandbox.server import serve
from remediate.sandbox.state import ApiCall
from remediate.sandbox.throttling import Bucket, Neighbour, ThrottlePolicy

__all__ = [
    "ApiCall",
    "Bucket",
    "Durations",
    "Fleet",
    "FleetSpec",
    "Neighbour",
    "RegionSetup",
    "Sandbox",
    "Target",
    "ThrottlePolicy",
    "Workspace",
    "serve",
]
