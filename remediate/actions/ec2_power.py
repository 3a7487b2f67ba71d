"""Power actions: ``ec2.stop``, ``ec2.start``, ``ec2.reboot``, ``ec2.verify_status``.

Each first reads the instance's real state and goes from there, so re-running
one after a crash (``remediate resume``) finishes what was started instead of
failing on "already stopped". Stop, start and reboot calls carry a ``batch_key``:
the executor merges them across targets (StopInstances takes 1,000 ids a call)
and each action picks its own entry out of the merged response.

:func:`ensure_stopped` and :func:`ensure_running` are the reconciling cores; the
volume actions reuse them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from remediate.actions.contract import Action, Plan, StepContext
from remediate.actions.ec2_inspect import (
    Record,
    Steps,
    aws,
    batch_limits,
    existing,
    iam,
    instance_state,
    own_entry,
    planned,
)
from remediate.actions.registry import register
from remediate.actions.requests import (
    ActionRun,
    Call,
    Sleep,
    StepFailed,
    Wait,
    WaitTimeout,
    observe,
)
from remediate.actions.target_permissions import REBOOT, START, STOP
from remediate.aws.resources import instance_health
from remediate.language.durations import format_duration, parse_duration
from remediate.language.schema import Bool, Duration, Field, Int
from remediate.language.schema import Record as Schema

if TYPE_CHECKING:
    from remediate.export.fragment import AslStep, Fragment

GONE = frozenset({"shutting-down", "terminated"})
USER_STOP = "Client.UserInitiatedShutdown"


def _state_reason(instance: Record | None) -> str:
    return str(((instance or {}).get("StateReason") or {}).get("Code", ""))


def _reason_text(instance: Record | None) -> str:
    reason = (instance or {}).get("StateReason") or {}
    return str(reason.get("Message") or reason.get("Code") or "no reason given")


def _gone(instance: Record | None) -> str | None:
    if instance is None:
        return "the instance no longer exists"
    if instance_state(instance) in GONE:
        return f"the instance is {instance_state(instance)}: {_reason_text(instance)}"
    return None


def _in_state(*states: str) -> Callable[[Record | None], bool]:
    return lambda instance: instance is not None and instance_state(instance) in states


def wait_instance(instance_id: str, state: str, timeout: float,
                  failed: Callable[[Record | None], str | None] = _gone) -> Wait:
    return Wait("instance", instance_id, until=_in_state(state), failed=failed,
                timeout=timeout, what=f"{instance_id} {state}")


def _start_failed(before: str) -> Callable[[Record | None], str | None]:
    """Failure of a start: gone, or stopped again for a new reason (e.g. an unusable KMS key).

    A stale read right after StartInstances can still show the old stop, so a
    stop counts only once the instance was seen pending or its reason changed.
    """
    seen_pending = False

    def check(instance: Record | None) -> str | None:
        nonlocal seen_pending
        gone = _gone(instance)
        if gone or instance is None:
            return gone
        state = instance_state(instance)
        seen_pending = seen_pending or state == "pending"
        reason = _state_reason(instance)
        if state == "stopped" and (seen_pending or reason not in {before, USER_STOP}):
            return f"the instance stopped again: {_reason_text(instance)}"
        return None

    return check


def ensure_stopped(instance_id: str, timeout: float, force_after: float | None = None) -> Steps:
    """Bring the instance to ``stopped`` from wherever it is; returns the state found."""
    instance = yield from existing("instance", instance_id, "instance")
    found = state = instance_state(instance)
    if state in GONE:
        raise StepFailed(f"{instance_id} is {state}; it cannot be stopped")
    if state == "pending":
        # AWS refuses to stop an instance that has not reached running yet.
        yield wait_instance(instance_id, "running", timeout)
        state = "running"
    if state == "running":
        yield from _stop_call(instance_id, force=False)
    if state != "stopped":
        yield from _wait_stopped(instance_id, timeout, force_after)
    return found


def _stop_call(instance_id: str, force: bool) -> Steps:
    params: dict[str, Any] = {"InstanceIds": [instance_id]}
    if force:
        params["Force"] = True
    response = yield from aws(
        Call("ec2", "StopInstances", params, batch_key="InstanceIds",
             note=f"{'force-' if force else ''}stop {instance_id}"), instance_id)
    if own_entry(response, "StoppingInstances", instance_id) is None:
        raise StepFailed(f"StopInstances did not report {instance_id}")


def _wait_stopped(instance_id: str, timeout: float, force_after: float | None) -> Steps:
    if force_after is None or force_after >= timeout:
        yield wait_instance(instance_id, "stopped", timeout)
        return
    try:
        yield wait_instance(instance_id, "stopped", force_after)
    except WaitTimeout:
        # A Windows guest crashing in a boot loop may never shut down cleanly.
        yield from _stop_call(instance_id, force=True)
        yield wait_instance(instance_id, "stopped", timeout - force_after)


def ensure_running(instance_id: str, timeout: float) -> Steps:
    """Bring the instance to ``running`` from wherever it is; returns the state found."""
    instance = yield from existing("instance", instance_id, "instance")
    found = state = instance_state(instance)
    if state in GONE:
        raise StepFailed(f"{instance_id} is {state}; it cannot be started")
    if state == "stopping":
        instance = yield wait_instance(instance_id, "stopped", timeout)
        state = "stopped"
    if state == "stopped":
        response = yield from aws(
            Call("ec2", "StartInstances", {"InstanceIds": [instance_id]},
                 batch_key="InstanceIds", note=f"start {instance_id}"), instance_id)
        if own_entry(response, "StartingInstances", instance_id) is None:
            raise StepFailed(f"StartInstances did not report {instance_id}")
    if state != "running":
        yield wait_instance(instance_id, "running", timeout,
                            failed=_start_failed(_state_reason(instance)))
    return found


# --- status checks ---


def _status_ok(record: Record | None) -> bool:
    return instance_health(record) == "ok"


def _settled(record: Record | None) -> bool:
    return instance_health(record) not in {"initializing", "insufficient-data"}


def _not_running(record: Record | None) -> str | None:
    state = ((record or {}).get("InstanceState") or {}).get("Name", "missing")
    if state in {"stopping", "stopped", "shutting-down", "terminated", "missing"}:
        return f"the instance is {state}"
    return None


def wait_status_ok(instance_id: str, timeout: float) -> Wait:
    return Wait("instance-status", instance_id, until=_status_ok, failed=_not_running,
                timeout=timeout, what=f"{instance_id} status checks ok")


def describe_checks(record: Record | None) -> str:
    """'instance check impaired (reachability failed), system check ok'."""
    parts = []
    for key, label in (("InstanceStatus", "instance"), ("SystemStatus", "system")):
        check = (record or {}).get(key) or {}
        failing = [f"{d.get('Name')} {d.get('Status')}" for d in check.get("Details") or []
                   if d.get("Status") != "passed"]
        text = f"{label} check {check.get('Status', 'unknown')}"
        parts.append(f"{text} ({', '.join(failing)})" if failing else text)
    return ", ".join(parts)


# --- schemas ---

TIMEOUT_HELP = "how long to wait for the instance to get there before failing the step"


def timeout_field(default: str, help_text: str = TIMEOUT_HELP) -> Field:
    """A Duration param; ``default`` is written like a playbook would ("15m").

    Record applies defaults unchecked, so the default is converted here.
    """
    seconds = parse_duration(default)
    assert seconds is not None, default
    return Field(Duration(minimum=1.0), default=seconds, description=f"{help_text} ({default})")


# --- actions ---


@register
class Stop(Action):
    """Stop the instance (the volume swap needs it stopped to detach the root)."""

    name = "ec2.stop"
    summary = "stop the instance and wait until it is stopped"
    params = Schema(fields={
        "timeout": timeout_field("15m"),
        "force_after": Field(Duration(minimum=1.0), description=(
            "if the instance is still not stopped after this long, stop it again with "
            "Force (for guests that never shut down cleanly); unset: never force")),
    })
    outputs = {"previous_state": "the state the instance was in before this step"}
    permissions = iam("ec2:DescribeInstances", "ec2:StopInstances")
    scoped_permissions = (STOP,)
    mutating = True
    batches = batch_limits("ec2:StopInstances")
    start_states = frozenset({"pending", "running", "stopping", "stopped"})
    risks = frozenset({"instance-store-data-loss", "spot-one-time", "spot-persistent",
                       "stop-protection", "public-ip-will-change", "hibernation-enabled"})
    verify = "the instance reaches 'stopped'"
    undo = "ec2.start"

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        if ctx.facts.get("state") == "stopped":
            return Plan(skip="already stopped")
        return Plan(calls=planned("ec2:StopInstances", note=f"stop {ctx.target.id}"))

    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        found = yield from ensure_stopped(ctx.target.id, params["timeout"],
                                          params.get("force_after"))
        return {"previous_state": found}

    def asl(self, step: AslStep) -> Fragment:
        from remediate.export.fragments import ec2_instance

        return ec2_instance.stop(step)


@register
class Start(Action):
    """Start the instance and wait until it runs."""

    name = "ec2.start"
    summary = "start the instance and wait until it is running"
    params = Schema(fields={"timeout": timeout_field("10m")})
    outputs = {"previous_state": "the state the instance was in before this step"}
    permissions = iam("ec2:DescribeInstances", "ec2:StartInstances")
    scoped_permissions = (START,)
    mutating = True
    batches = batch_limits("ec2:StartInstances")
    start_states = frozenset({"pending", "running", "stopping", "stopped"})
    risks = frozenset({"kms-key-unusable"})
    verify = "the instance reaches 'running' (and does not stop again)"
    undo = "ec2.stop"

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        if ctx.facts.get("state") == "running":
            return Plan(skip="already running")
        return Plan(calls=planned("ec2:StartInstances", note=f"start {ctx.target.id}"))

    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        found = yield from ensure_running(ctx.target.id, params["timeout"])
        return {"previous_state": found}

    def asl(self, step: AslStep) -> Fragment:
        from remediate.export.fragments import ec2_instance

        return ec2_instance.start(step)


@register
class Reboot(Action):
    """Reboot up to ``times`` times, stopping as soon as status checks pass.

    The cheapest route: the sensor sometimes fetches the fixed channel file before
    it crashes. The step succeeds either way; ``healthy`` says whether it worked,
    so a playbook can go on to the next route ``when`` it did not.
    """

    name = "ec2.reboot"
    summary = "reboot up to N times until status checks pass"
    params = Schema(fields={
        "times": Field(Int(minimum=1, maximum=10), default=3,
                       description="reboot at most this many times"),
        "verify": Field(Bool(), default=True, description=(
            "wait for status checks after each reboot and stop once they pass; false: "
            "reboot once per `times`, waiting `timeout` in between, without checking")),
        "timeout": timeout_field("10m", "how long to wait for status checks after each reboot"),
        "settle": timeout_field("3m", (
            "how long a reboot gets before impaired status checks count as a failed boot: "
            "then the next reboot goes at once instead of waiting out `timeout`")),
    })
    outputs = {"healthy": "whether status checks passed (None when verify is false)",
               "reboots": "how many reboots this step made"}
    permissions = iam("ec2:DescribeInstanceStatus", "ec2:RebootInstances")
    scoped_permissions = (REBOOT,)
    mutating = True
    batches = batch_limits("ec2:RebootInstances")
    start_states = frozenset({"running"})
    verify = "instance and system status checks 'ok'"

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        if ctx.facts.get("status") == "ok":
            return Plan(skip="status checks already ok")
        return Plan(calls=planned("ec2:RebootInstances", "ec2:DescribeInstanceStatus",
                                  note=f"up to {params.get('times', 3)} reboots"))

    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        iid = ctx.target.id
        status = yield observe("instance-status", iid)
        health = instance_health(status)
        if health in {"not-running", "missing"}:
            raise StepFailed(f"{iid} is not running ({_not_running(status) or health}); "
                             "a reboot needs a running instance")
        if params["verify"] and health == "initializing":
            # It is booting already: let this boot finish before forcing another.
            try:
                health = instance_health((yield Wait(
                    "instance-status", iid, until=_settled, failed=_not_running,
                    timeout=params["timeout"], what=f"{iid} status checks settled")))
            except WaitTimeout:
                health = "initializing"
        if health == "ok":
            return {"healthy": True, "reboots": 0}
        for count in range(1, params["times"] + 1):
            yield from aws(Call("ec2", "RebootInstances", {"InstanceIds": [iid]},
                                batch_key="InstanceIds", note=f"reboot {iid} ({count})"), iid)
            if not params["verify"]:
                if count < params["times"]:
                    yield Sleep(params["timeout"])
                continue
            if (yield from _boot_went_well(iid, params["settle"], params["timeout"])):
                return {"healthy": True, "reboots": count}
        return {"healthy": None if not params["verify"] else False, "reboots": params["times"]}

    def asl(self, step: AslStep) -> Fragment:
        from remediate.export.fragments import ec2_instance

        return ec2_instance.reboot(step)


def _boot_went_well(instance_id: str, settle: float, timeout: float) -> Steps:
    """After a reboot: True once status checks pass. False when they still fail after
    ``settle`` (impaired: this boot crashed too; checks read sooner could still be the
    previous boot's), or are still not ok after ``timeout``."""
    first = min(settle, timeout)
    if (yield from _became_ok(instance_id, first)):
        return True
    if timeout <= first:
        return False
    try:
        record = yield Wait("instance-status", instance_id, until=_settled,
                            failed=_not_running, timeout=timeout - first,
                            what=f"{instance_id} status checks settled")
    except WaitTimeout:
        return False
    return instance_health(record) == "ok"


def _became_ok(instance_id: str, timeout: float) -> Steps:
    try:
        yield wait_status_ok(instance_id, timeout)
    except WaitTimeout:
        return False
    return True


@register
class VerifyStatus(Action):
    """Fail the step unless instance and system status checks pass within the timeout."""

    name = "ec2.verify_status"
    summary = "wait for status checks to pass; fail naming the impaired check"
    params = Schema(fields={"timeout": timeout_field("10m", "how long status checks may take")})
    outputs = {"status": "'ok' once the checks pass"}
    permissions = iam("ec2:DescribeInstanceStatus")
    verify = "instance and system status checks 'ok'"

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        return Plan(calls=planned("ec2:DescribeInstanceStatus"))

    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        iid = ctx.target.id
        if (yield from _became_ok(iid, params["timeout"])):
            return {"status": "ok"}
        record = yield observe("instance-status", iid)
        raise StepFailed(f"status checks of {iid} not ok after "
                         f"{format_duration(params['timeout'])}: {describe_checks(record)}")

    def asl(self, step: AslStep) -> Fragment:
        from remediate.export.fragments import ec2_instance

        return ec2_instance.verify_status(step)
