"""SSM Run Command that behaves like AWS: targeted, timed, and only on live nodes.

Patches moto's SSM model and responses:

* ``Command._get_instance_ids_from_targets``: with ``InstanceIds`` only, moto
  added every instance of the Region; now only the named ids get invocations.
* ``SimpleSystemManagerBackend.send_command``: refuses terminated/unknown ids
  (``InvalidInstanceId``), more than 50 ids, and documents for the wrong OS;
  each invocation is ``Pending``, then ``InProgress`` while the script runs
  (``Durations.ssm_command``), then ``Success``/``Failed`` with stdout, stderr
  and exit code. An instance that is not online (stopped, booting, boot-looping)
  gets its invocation when it comes online, or ``DeliveryTimedOut`` after the
  command's ``TimeoutSeconds``.
* ``Command.response_object``: status and counts computed from invocations.
* New ``ListCommandInvocations`` (without a CommandId, it shows a command only
  ``Durations.listing_lag`` after it was sent) and ``DescribeInstanceInformation``: every
  non-terminated instance registered with SSM (:mod:`ssm_registration`: an instance
  profile, or Default Host Management Configuration) is listed; it is ``Online`` only
  while running with a finished, healthy boot (status ``ok``), else ``ConnectionLost``.
  SendCommand refuses an instance that is not registered (``InvalidInstanceId``).

Scripts are interpreted by :mod:`incident` (the channel-file repair); any other
script succeeds with no output.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.ssm.models import Command, SimpleSystemManagerBackend
from moto.ssm.responses import SimpleSystemManagerResponse

from remediate.sandbox import errors, incident
from remediate.sandbox.patcher import Patcher
from remediate.sandbox.ssm_registration import is_registered
from remediate.sandbox.state import World, current

SCRIPT_DOCUMENTS: Mapping[str, tuple[str, str]] = {
    "AWS-RunPowerShellScript": ("aws:runPowerShellScript", "Windows"),
    "AWS-RunShellScript": ("aws:runShellScript", "Linux"),
}
TERMINAL = frozenset({"Success", "Failed", "DeliveryTimedOut", "TimedOut", "Cancelled"})
DEFAULT_TIMEOUT = 3600
PAGE = 50


def is_online(world: World, instance: Any) -> bool:
    return bool(instance.state == "running" and world.facts(instance.id).status == "ok"
                and is_registered(world, instance))


def _iso(world: World) -> str:
    return world.clock.wall().isoformat()


def _script(parameters: Mapping[str, Any]) -> str:
    commands = parameters.get("commands") or []
    return "\n".join(commands if isinstance(commands, list) else [str(commands)])


def _finish(
    world: World, invocation: dict[str, Any], status: str, code: int, out: str, err: str
) -> None:
    invocation.update(
        Status=status,
        StatusDetails=status,
        ResponseCode=code,
        StandardOutputContent=out,
        StandardErrorContent=err,
        ExecutionEndDateTime=_iso(world),
    )


def _execute(
    world: World, command: Any, invocation: dict[str, Any], instance: Any, at: float
) -> None:
    """Delivered: InProgress now, the script's outcome after ``ssm_command``."""
    if invocation["Status"] in TERMINAL:
        return
    invocation.update(
        Status="InProgress", StatusDetails="InProgress", ExecutionStartDateTime=_iso(world)
    )

    def done(_: float) -> None:
        if invocation["Status"] != "InProgress":
            return
        if not is_online(world, instance):
            _finish(
                world,
                invocation,
                "Failed",
                -1,
                "",
                f"{instance.id} stopped responding during the command.",
            )
            return
        script = _script(command.parameters)
        if incident.is_verify_script(script):
            result = incident.verify_guest(world, instance)
            status = "Success" if result.exit_code == 0 else "Failed"
            _finish(world, invocation, status, result.exit_code, result.stdout, result.stderr)
        elif incident.is_repair_script(script):
            result = incident.run_repair(world, instance, script)
            status = "Success" if result.exit_code == 0 else "Failed"
            _finish(world, invocation, status, result.exit_code, result.stdout, result.stderr)
        else:
            _finish(world, invocation, "Success", 0, "", "")

    world.timeline.schedule(
        ("ssm", command.command_id, instance.id), at + _seconds(world, command, instance), done
    )


def _seconds(world: World, command: Any, instance: Any) -> float:
    """How long the script runs: drawn per volume it names (the repair of one volume, so
    a target's repair takes the same time whichever rescue instance runs it), the
    slowest one for a script that names several; else per invocation."""
    keys = incident.named_volumes(_script(command.parameters))
    return max(world.durations.draw("ssm_command", key)
               for key in keys or [f"{command.command_id}/{instance.id}"])


def _dispatch(
    world: World, backend: Any, command: Any, invocation: dict[str, Any], now: float
) -> None:
    instance = backend.get_instance(invocation["InstanceId"])
    if is_online(world, instance):
        _execute(world, command, invocation, instance, now)
        return

    def deliver(at: float) -> None:
        _execute(world, command, invocation, instance, at)

    world.ssm_waiting.setdefault(instance.id, []).append(deliver)

    def timed_out(_: float) -> None:
        if invocation["Status"] == "Pending":
            _finish(world, invocation, "DeliveryTimedOut", -1, "", "")

    world.timeline.also(
        ("ssm-timeout", command.command_id), now + command.timeout_seconds, timed_out
    )


def _on_online(instance: Any, at: float) -> None:
    waiting = current().ssm_waiting.pop(instance.id, [])
    for deliver in waiting:
        deliver(at)


def _aggregate(command: Any) -> tuple[str, int, int, int]:
    statuses = [i["Status"] for i in command.invocations]
    completed = sum(1 for s in statuses if s in TERMINAL)
    errors_ = sum(1 for s in statuses if s == "Failed")
    timed_out = sum(1 for s in statuses if s == "DeliveryTimedOut")
    if statuses and all(s == "Pending" for s in statuses):
        status = "Pending"
    elif completed < len(statuses):
        status = "InProgress"
    elif all(s == "Success" for s in statuses):
        status = "Success"
    elif errors_:
        status = "Failed"
    elif timed_out:
        status = "DeliveryTimedOut"
    else:
        status = "Success"
    return status, completed, errors_, timed_out


def _page(items: list[Any], token: str | None, size: int) -> tuple[list[Any], str | None]:
    start = int(token or 0)
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


def _plugin(invocation: Mapping[str, Any]) -> dict[str, Any]:
    output = (invocation["StandardOutputContent"] + invocation["StandardErrorContent"])[:2500]
    return {
        "Name": invocation["PluginName"],
        "Status": invocation["Status"],
        "StatusDetails": invocation["StatusDetails"],
        "ResponseCode": invocation["ResponseCode"],
        "Output": output,
    }


def _filter_values(response: Any) -> dict[str, set[str]]:
    wanted: dict[str, set[str]] = {}
    for item in response._get_param("InstanceInformationFilterList") or []:
        wanted.setdefault(item["key"], set()).update(item.get("valueSet") or [])
    for item in response._get_param("Filters") or []:
        wanted.setdefault(item["Key"], set()).update(item.get("Values") or [])
    return wanted


def _information(
    world: World, instances: Iterable[Any], wanted: Mapping[str, set[str]]
) -> list[dict[str, Any]]:
    rows = []
    for instance in instances:
        if instance.state in ("terminated", "shutting-down") or not is_registered(
                world, instance):
            continue
        platform = world.facts(instance.id).platform
        row = {
            "InstanceId": instance.id,
            "PingStatus": "Online" if is_online(world, instance) else "ConnectionLost",
            "LastPingDateTime": world.clock.wall(),
            "AgentVersion": "3.3.987.0",
            "IsLatestVersion": False,
            "PlatformType": platform,
            "PlatformName": "Microsoft Windows Server 2019 Datacenter"
            if platform == "Windows"
            else "Amazon Linux",
            "ResourceType": "EC2Instance",
            "IPAddress": instance.private_ip_address,
            "ComputerName": f"EC2AMAZ-{instance.id[-7:].upper()}",
        }
        keys = {
            "InstanceIds": "InstanceId",
            "PingStatus": "PingStatus",
            "PlatformTypes": "PlatformType",
        }
        if all(row[keys[key]] in values for key, values in wanted.items() if key in keys):
            rows.append(row)
    return rows


def install(patcher: Patcher) -> None:
    original_targets = Command._get_instance_ids_from_targets
    original_response_object = Command.response_object
    original_send = SimpleSystemManagerBackend.send_command

    def get_instance_ids_from_targets(self: Any) -> list[str]:
        return list(original_targets(self)) if self.targets else []

    def send_command(self: Any, **kwargs: Any) -> Any:
        world = current()
        ec2 = ec2_backends[self.account_id][self.region_name]
        instance_ids: list[str] = list(kwargs.get("instance_ids") or [])
        if len(instance_ids) > 50:
            raise errors.too_many_requests("instanceIds", len(instance_ids), 50)
        found = {i.id: i for i in ec2.all_instances()} if instance_ids else {}
        bad = [
            i
            for i in instance_ids
            if i not in found or found[i].state in ("terminated", "shutting-down")
            or not is_registered(world, found[i])
        ]
        if bad:
            raise errors.ssm_invalid_instance(bad, self.account_id)
        document = kwargs.get("document_name") or ""
        plugin, platform = SCRIPT_DOCUMENTS.get(document, ("aws:runShellScript", ""))
        if platform and any(world.facts(i).platform != platform for i in instance_ids):
            raise errors.ssm_unsupported_platform(document)
        kwargs["timeout_seconds"] = kwargs.get("timeout_seconds") or DEFAULT_TIMEOUT
        command = original_send(self, **kwargs)
        now = world.now()
        world.created[command.command_id] = now
        for invocation in command.invocations:
            invocation.update(
                PluginName=plugin,
                Status="Pending",
                StatusDetails="Pending",
                ResponseCode=-1,
                ExecutionStartDateTime="",
                ExecutionEndDateTime="",
                ExecutionElapsedTime="",
            )
        for invocation in command.invocations:
            _dispatch(world, ec2, command, invocation, now)
        return command

    def response_object(self: Any) -> dict[str, Any]:
        status, completed, errors_, timed_out = _aggregate(self)
        self.status, self.status_details = status, status
        self.completed_count, self.error_count = completed, errors_
        self.target_count = len(self.invocations)
        result: dict[str, Any] = original_response_object(self)
        result["DeliveryTimedOutCount"] = timed_out
        return result

    def list_command_invocations(self: Any) -> ActionResult:
        command_id = self._get_param("CommandId")
        instance_id = self._get_param("InstanceId")
        details = bool(self._get_param("Details"))
        commands = self.ssm_backend.list_commands(command_id, None)
        world = current()
        rows = []
        for command in commands:
            if not command_id and not world.listed(command.command_id):
                continue  # a listing lags behind SendCommand (eventual consistency)
            for invocation in command.invocations:
                if instance_id and invocation["InstanceId"] != instance_id:
                    continue
                row = {
                    "CommandId": command.command_id,
                    "InstanceId": invocation["InstanceId"],
                    "Comment": command.comment,
                    "DocumentName": command.document_name,
                    "RequestedDateTime": command.requested_date_time,
                    "Status": invocation["Status"],
                    "StatusDetails": invocation["StatusDetails"],
                    "CommandPlugins": [_plugin(invocation)] if details else [],
                }
                rows.append(row)
        page, token = _page(
            rows, self._get_param("NextToken"), int(self._get_param("MaxResults") or PAGE)
        )
        return ActionResult({"CommandInvocations": page, "NextToken": token})

    def describe_instance_information(self: Any) -> ActionResult:
        world = current()
        ec2 = ec2_backends[self.current_account][self.region]
        rows = _information(world, ec2.all_instances(), _filter_values(self))
        page, token = _page(
            rows, self._get_param("NextToken"), int(self._get_param("MaxResults") or PAGE)
        )
        return ActionResult({"InstanceInformationList": page, "NextToken": token})

    patcher.set(Command, "_get_instance_ids_from_targets", get_instance_ids_from_targets)
    patcher.set(Command, "response_object", response_object)
    patcher.set(SimpleSystemManagerBackend, "send_command", send_command)
    patcher.set(SimpleSystemManagerResponse, "list_command_invocations", list_command_invocations)
    patcher.set(
        SimpleSystemManagerResponse, "describe_instance_information", describe_instance_information
    )
    current().online_listeners.append(_on_online)
