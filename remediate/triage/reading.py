"""What triage reads about each target, through :class:`~.pacing.PacedCalls`.

Per account and Region: DescribeInstances (200 ids a call) for the state and the facts
routes need, DescribeInstanceStatus (100 a call, ``IncludeAllInstances``) for the status
checks, DescribeInstanceTypes for instance store, DescribeSpotInstanceRequests for the
Spot instances' request type; then, per running instance, GetConsoleOutput and
GetConsoleScreenshot (one instance a call, each API its own bucket), and for an
instance failing its checks DescribeInstanceAttribute (``disableApiStop``: stop
protection blocks the offline repair). WorkSpaces: DescribeWorkspaces and
DescribeWorkspacesConnectionStatus, 25 a call. Nothing here changes anything.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

from remediate.actions.contract import Target
from remediate.actions.requests import AwsError
from remediate.triage import screen, serial
from remediate.triage.pacing import Call, PacedCalls

INSTANCES_PER_DESCRIBE: Final = 200
STATUSES_PER_CALL: Final = 100
TYPES_PER_CALL: Final = 100
WORKSPACES_PER_CALL: Final = 25


@dataclass
class Reading:
    """Everything read about one target (``errors``: the calls that failed, each as
    ``Operation: Code: message``)."""

    target: Target
    state: str = "unknown"
    status: str = "not read"
    connection: str = "not read"
    serial: serial.SerialReading | None = None
    screen: screen.ScreenReading | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[start:start + size]) for start in range(0, len(items), size)]


@dataclass
class _Region:
    """The reads of one (account, Region)."""

    calls: PacedCalls
    account: str
    region: str
    readings: dict[str, Reading]
    instance_store: dict[str, bool] = field(default_factory=dict)
    """Instance type -> whether it has instance store, once read."""
    waiting: dict[str, list[str]] = field(default_factory=dict)
    """Instance type being read -> the instances waiting for it."""

    def call(self, service: str, name: str, params: Mapping[str, Any],
             ok: Any, about: Iterable[str]) -> None:
        """Queue a call; ``ok(answer)`` on success, else its error noted on ``about``."""
        about = list(about)

        def done(answer: Mapping[str, Any] | None, error: AwsError | None) -> None:
            if error is not None:
                for target_id in about:
                    self.readings[target_id].errors.append(f"{name}: {error}")
            else:
                ok(answer)

        self.calls.add(Call(self.account, self.region, service, name, params, done))

    # ---- EC2 ---------------------------------------------------------------------

    def instances(self, ids: list[str]) -> None:
        for chunk in _chunks(ids, INSTANCES_PER_DESCRIBE):
            self.call("ec2", "DescribeInstances", {"InstanceIds": chunk},
                      self._described, chunk)
        for chunk in _chunks(ids, STATUSES_PER_CALL):
            self.call("ec2", "DescribeInstanceStatus",
                      {"InstanceIds": chunk, "IncludeAllInstances": True},
                      self._statuses, chunk)

    def _described(self, answer: Mapping[str, Any]) -> None:
        new_types: list[str] = []
        spot: list[str] = []
        for reservation in answer.get("Reservations", []):
            for record in reservation.get("Instances", []):
                reading = self.readings.get(record["InstanceId"])
                if reading is None:
                    continue
                reading.state = record.get("State", {}).get("Name", "unknown")
                reading.tags = {t["Key"]: t["Value"] for t in record.get("Tags", [])}
                reading.facts.update(
                    id=record["InstanceId"], region=self.region,
                    instance_type=record.get("InstanceType"),
                    platform="windows" if record.get("Platform") == "windows" else "linux",
                    lifecycle=record.get("InstanceLifecycle", "on-demand"),
                    product_codes=[c["ProductCodeId"] for c in record.get("ProductCodes", [])],
                    hibernation=bool(record.get("HibernationOptions", {}).get("Configured")),
                    image_id=record.get("ImageId"), state=reading.state)
                new_types += self._instance_type(reading, str(record.get("InstanceType")))
                if reading.facts["lifecycle"] == "spot":
                    spot.append(record["InstanceId"])
                if reading.state == "running":
                    self._consoles(record["InstanceId"])
        for chunk in _chunks(new_types, TYPES_PER_CALL):
            self.calls.add(Call(self.account, self.region, "ec2", "DescribeInstanceTypes",
                                {"InstanceTypes": chunk}, partial(self._types, chunk)))
        for chunk in _chunks(spot, INSTANCES_PER_DESCRIBE):
            self.call("ec2", "DescribeSpotInstanceRequests",
                      {"Filters": [{"Name": "instance-id", "Values": chunk}]},
                      self._spot, chunk)

    def _consoles(self, instance_id: str) -> None:
        reading = self.readings[instance_id]

        def output(answer: Mapping[str, Any]) -> None:
            reading.serial = serial.read(str(answer.get("Output") or ""))

        def shot(answer: Mapping[str, Any]) -> None:
            reading.screen = screen.read(answer.get("ImageData"))

        self.call("ec2", "GetConsoleOutput", {"InstanceId": instance_id}, output, [instance_id])
        self.call("ec2", "GetConsoleScreenshot", {"InstanceId": instance_id}, shot,
                  [instance_id])

    def _statuses(self, answer: Mapping[str, Any]) -> None:
        for record in answer.get("InstanceStatuses", []):
            reading = self.readings.get(record["InstanceId"])
            if reading is None:
                continue
            reading.status = record.get("InstanceStatus", {}).get("Status", "unknown")
            reading.facts["status"] = reading.status
            if reading.status != "ok" and record.get("InstanceState", {}).get(
                    "Name") == "running":
                self._stop_protection(reading)

    def _stop_protection(self, reading: Reading) -> None:
        def ok(answer: Mapping[str, Any]) -> None:
            reading.facts["stop_protection"] = bool(
                answer.get("DisableApiStop", {}).get("Value"))

        self.call("ec2", "DescribeInstanceAttribute",
                  {"InstanceId": reading.target.id, "Attribute": "disableApiStop"}, ok,
                  [reading.target.id])

    def _instance_type(self, reading: Reading, instance_type: str) -> list[str]:
        """Instance store from the type, read once per type and Region: ``[type]`` when
        it is to be read."""
        if instance_type in self.instance_store:
            reading.facts["instance_store"] = self.instance_store[instance_type]
            return []
        waiting = self.waiting.setdefault(instance_type, [])
        waiting.append(reading.target.id)
        return [instance_type] if len(waiting) == 1 else []

    def _types(self, asked: list[str], answer: Mapping[str, Any] | None,
               error: AwsError | None) -> None:
        for info in (answer or {}).get("InstanceTypes", []):
            self.instance_store[info["InstanceType"]] = bool(info.get("InstanceStorageSupported"))
        for name in asked:
            for instance_id in self.waiting.pop(name, []):
                reading = self.readings[instance_id]
                if error is not None:
                    reading.errors.append(f"DescribeInstanceTypes: {error}")
                elif name in self.instance_store:
                    reading.facts["instance_store"] = self.instance_store[name]

    def _spot(self, answer: Mapping[str, Any]) -> None:
        for request in answer.get("SpotInstanceRequests", []):
            reading = self.readings.get(request.get("InstanceId", ""))
            if reading is not None:
                reading.facts["spot_request_type"] = request.get("Type")

    # ---- WorkSpaces -----------------------------------------------------------------

    def workspaces(self, ids: list[str]) -> None:
        for chunk in _chunks(ids, WORKSPACES_PER_CALL):
            self.call("workspaces", "DescribeWorkspaces", {"WorkspaceIds": chunk},
                      self._workspaces, chunk)
            self.call("workspaces", "DescribeWorkspacesConnectionStatus",
                      {"WorkspaceIds": chunk}, self._connections, chunk)

    def _workspaces(self, answer: Mapping[str, Any]) -> None:
        for record in answer.get("Workspaces", []):
            reading = self.readings.get(record["WorkspaceId"])
            if reading is not None:
                reading.state = str(record.get("State", "unknown"))
                reading.facts.update(id=record["WorkspaceId"], state=reading.state)

    def _connections(self, answer: Mapping[str, Any]) -> None:
        for record in answer.get("WorkspacesConnectionStatus", []):
            reading = self.readings.get(record["WorkspaceId"])
            if reading is not None:
                reading.connection = str(record.get("ConnectionState", "UNKNOWN"))


def read_all(calls: PacedCalls, targets: Sequence[Target]) -> list[Reading]:
    """Read every target (in the order given), paced; returns when all is read."""
    readings = {t.key: Reading(t) for t in targets}
    groups: dict[tuple[str, str], list[Target]] = defaultdict(list)
    for target in targets:
        groups[(target.account, target.region)].append(target)
    for (account, region), members in groups.items():
        by_id = {t.id: readings[t.key] for t in members}
        where = _Region(calls, account, region, by_id)
        where.instances([t.id for t in members if t.kind == "ec2-instance"])
        where.workspaces([t.id for t in members if t.kind == "workspace"])
    calls.run()
    return [readings[t.key] for t in targets]
