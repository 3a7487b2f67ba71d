"""The fleet a dry run found, as a forecast rebuilds it; and what the forecast tells.

Only what changes the calls a run makes and how long it takes is kept: each
instance's Region, Availability Zone (as an index: AZ names differ between
accounts), the pitfall that decides its findings, its state and whether its status
checks pass; each WorkSpace's state. What inspection cannot see is assumed, and
said in :data:`ASSUMPTIONS`: the forecast is of that fleet.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from remediate.actions.contract import Target

ASSUMPTIONS: Final = (
    "an instance whose status checks fail stays broken until its root volume is repaired "
    "(reboots do not fix it); a WorkSpace not AVAILABLE is fixed by a reboot"
)


class ForecastFailed(Exception):
    """The rehearsal could not run (no sandbox installed, or it failed); the message
    says why in one line."""


@dataclass(frozen=True)
class ModelInstance:
    account: str
    region: str
    az: int
    """Index of its AZ among the Region's AZs the fleet uses (sorted by name)."""
    kind: str
    """The sandbox's name for its pitfall (:class:`remediate.sandbox.FleetSpec`)."""
    state: str
    healthy: bool


@dataclass(frozen=True)
class ModelWorkspace:
    account: str
    region: str
    condition: str
    """The sandbox's condition (:func:`remediate.sandbox.workspaces.set_condition`),
    or ``healthy`` for an AVAILABLE one."""


@dataclass(frozen=True)
class FleetModel:
    """The dry run's fleet and run options: everything the rehearsal needs."""

    playbook: str
    playbook_text: str | None
    params: dict[str, Any]
    accepted: tuple[str, ...] = ()
    concurrency: int | None = None
    rate_limits: dict[str, tuple[float, float]] = field(default_factory=dict)
    instances: tuple[ModelInstance, ...] = ()
    workspaces: tuple[ModelWorkspace, ...] = ()

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> FleetModel:
        data = json.loads(text)
        return cls(
            data["playbook"], data["playbook_text"], data["params"], tuple(data["accepted"]),
            data["concurrency"], {k: (v[0], v[1]) for k, v in data["rate_limits"].items()},
            tuple(ModelInstance(**i) for i in data["instances"]),
            tuple(ModelWorkspace(**w) for w in data["workspaces"]))

    @property
    def targets(self) -> int:
        return len(self.instances) + len(self.workspaces)


@dataclass(frozen=True)
class Forecast:
    """What the rehearsal of the run did: its mutating calls and how long it took."""

    seconds: float
    calls: dict[str, int]
    """``service:Operation`` -> requests sent (merged calls once, rescue launches too)."""
    targets: int

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Forecast:
        data = json.loads(text)
        return cls(float(data["seconds"]), {k: int(v) for k, v in data["calls"].items()},
                   int(data["targets"]))


def instance_kind(facts: Mapping[str, Any]) -> str:
    """The sandbox kind with the same pitfall as an instance with these facts."""
    if facts.get("instance_store"):
        return "instance_store"
    if facts.get("lifecycle") == "spot":
        return "spot_persistent" if facts.get("spot_request_type") == "persistent" \
            else "spot_one_time"
    if facts.get("stop_protection"):
        return "stop_protected"
    if facts.get("product_codes"):
        return "marketplace"
    if facts.get("root_encrypted") and facts.get("kms_key_usable") is False:
        return "encrypted_bad_key"
    if facts.get("hibernation"):
        return "hibernation"
    return "plain"


def workspace_condition(facts: Mapping[str, Any]) -> str:
    state = facts.get("state")
    if state == "AVAILABLE":
        return "healthy"
    return "stopped-reboot" if state == "STOPPED" else "reboot"


def fleet_model(targets: Iterable[tuple[Target, Mapping[str, Any]]], **run: Any) -> FleetModel:
    """The model of the inspected ``targets`` (each with its facts); ``run``: the
    :class:`FleetModel`'s other fields."""
    inspected = list(targets)
    zones: dict[str, list[str]] = {}
    for target, facts in inspected:
        if target.kind == "ec2-instance":
            zones.setdefault(target.region, []).append(str(facts.get("availability_zone")))
    order = {region: sorted(set(names)) for region, names in zones.items()}
    instances: list[ModelInstance] = []
    workspaces: list[ModelWorkspace] = []
    for target, facts in inspected:
        if target.kind == "workspace":
            workspaces.append(ModelWorkspace(target.account, target.region,
                                             workspace_condition(facts)))
        else:
            az = order[target.region].index(str(facts.get("availability_zone")))
            instances.append(ModelInstance(target.account, target.region, az,
                                           instance_kind(facts), str(facts.get("state")),
                                           facts.get("status") == "ok"))
    return FleetModel(instances=tuple(instances), workspaces=tuple(workspaces), **run)
