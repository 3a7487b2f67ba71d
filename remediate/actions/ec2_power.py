"""Power actions: ``ec2.stop``, ``ec2.start``, ``ec2.reboot``, ``ec2.verify_status``.

Each first reads the instance's real state and goes from there, so re-running
one after a crash (``remediate resume``) finishes what was started instead of
failing on "already stopped". Stop, start and reboot calls carry a ``batch_key``:
the executor merges them across targets (StopInstances takes 1,000 ids a call)
and each action picks its own entry out of the merged response.

The reconciling cores, to stopped and to running from wherever the instance is, are
program pieces in :mod:`remediate.actions.instance_flows`; the volume actions reuse them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from remediate.actions import capacity_hold
from remediate.actions import instance_flows as flows
from remediate.actions.contract import Plan, StepContext, calls
from remediate.actions.ec2_inspect import (
    Record,
    batch_limits,
    iam,
    planned,
)
from remediate.actions.program import (
    TARGET_ID,
    All,
    AtLeast,
    Await,
    Done,
    Eq,
    Fail,
    Fmt,
    If,
    Loop,
    Not,
    Pause,
    Plus,
    Program,
    Read,
    Send,
    Seq,
    Set,
    Var,
    program,
)
from remediate.actions.programmed import ProgramAction
from remediate.actions.registry import register
from remediate.actions.requests import (
    Wait,
)
from remediate.actions.target_permissions import HOLD, REBOOT, RELEASE, START, STOP
from remediate.aws.resources import instance_health
from remediate.language.durations import format_duration, parse_duration
from remediate.language.schema import Bool, Duration, Field, Int
from remediate.language.schema import Record as Schema

if TYPE_CHECKING:
    pass

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
class Stop(ProgramAction):
    """Stop the instance (the volume swap needs it stopped to detach the root)."""

    name = "ec2.stop"
    summary = "stop the instance and wait until it is stopped"
    params = Schema(fields={
        "timeout": timeout_field("15m"),
        "force_after": Field(Duration(minimum=1.0), description=(
            "if the instance is still not stopped after this long, stop it again with "
            "Force (for guests that never shut down cleanly); unset: never force")),
        "skip_os_shutdown": Field(Bool(), default=False, description=(
            "stop without the guest's graceful OS shutdown (StopInstances SkipOsShutdown): "
            "for a guest crashing in a boot loop, which has no OS to shut down; AWS warns "
            "that in-flight writes of a running OS may be lost")),
        "hold_capacity": Field(Bool(templated=True), default=False, description=(
            "hold the instance's capacity with an On-Demand Capacity Reservation before the "
            "stop, used by its next start and cancelled once it runs (and at the end of "
            "the run); if AWS cannot reserve it, the instance is not stopped")),
    })
    outputs = {"previous_state": "the state the instance was in before this step"}
    permissions = iam("ec2:DescribeInstances", "ec2:StopInstances",
                      "ec2:DescribeCapacityReservations", "ec2:CreateCapacityReservation",
                      "ec2:CreateTags")
    scoped_permissions = (STOP, *HOLD)
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
        if params.get("hold_capacity") is True:
            # The permission probe sends the hold's own tags: the policy requires them.
            probe = capacity_hold.probe_request(ctx.run_id, ctx.facts)
            note = f"hold its capacity, then stop {ctx.target.id}"
            return Plan(calls=(*calls("ec2:CreateCapacityReservation", note=note, probe=probe),
                               *planned("ec2:StopInstances", note=note)))
        return Plan(calls=planned("ec2:StopInstances", note=f"stop {ctx.target.id}"))

    def cleanup(self, params: Mapping[str, Any]) -> Program | None:
        """The iteration's release of the target's hold, unless the step never holds
        capacity: ``hold_capacity`` false at export. A value known only at run time (an
        earlier step's output) keeps it: a hold left behind costs money, one needless
        DescribeCapacityReservations per iteration does not."""
        return None if params.get("hold_capacity") is False else \
            capacity_hold.iteration_cleanup()

    def program(self, params: Mapping[str, Any]) -> Program:
        return program(*flows.stopped("instance", TARGET_ID, params["timeout"],
                                      params.get("force_after"), params["skip_os_shutdown"],
                                      _holding(params)),
                       Done({"previous_state": Var("vars.instance").State.Name}))


def _holding(params: Mapping[str, Any]) -> Eq | None:
    """When the stop holds capacity first: never when the step says false; else when its
    value (a playbook parameter, say) is true as the step runs."""
    return None if params["hold_capacity"] is False else Eq(Var("params.hold_capacity"), True)


@register
class Start(ProgramAction):
    """Start the instance and wait until it runs."""

    name = "ec2.start"
    summary = "start the instance and wait until it is running"
    params = Schema(fields={"timeout": timeout_field("10m")})
    outputs = {"previous_state": "the state the instance was in before this step"}
    permissions = iam("ec2:DescribeInstances", "ec2:StartInstances",
                      "ec2:DescribeCapacityReservations", "ec2:ModifyCapacityReservation",
                      "ec2:CancelCapacityReservation")
    scoped_permissions = (START, *RELEASE)
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

    def program(self, params: Mapping[str, Any]) -> Program:
        return program(*flows.running("instance", TARGET_ID, params["timeout"]),
                       Done({"previous_state": Var("vars.instance").State.Name}))


@register
class Reboot(ProgramAction):
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

    def program(self, params: Mapping[str, Any]) -> Program:
        iid, status = TARGET_ID, Var("vars.status")
        times, verify, timeout = params["times"], params["verify"], params["timeout"]
        reboots = Var("vars.reboots")
        healthy = Done({"healthy": True, "reboots": reboots})
        after: Seq
        if verify:
            after = (*_boot(iid, params["settle"], timeout),
                     If(((Eq(Var("vars.healthy"), True), (healthy,)),)))
        else:
            after = (If(((Not(AtLeast(reboots, times)), (Pause(timeout),)),)),)
        booting = All(Eq(status.InstanceState.Name, "running"), Not(flows.settled(status)))
        return program(
            Read("status", "instance-status", iid),
            If(((flows.not_running(status), (Fail(Fmt(
                iid, " is not running (the instance is ", status.InstanceState.Name,
                "); a reboot needs a running instance")),)),)),
            # Booting already: let this boot finish before forcing another.
            *((If(((booting, (Await("status", "instance-status", iid, until=flows.settled(),
                                    fail=flows.NOT_RUNNING_FAIL, timeout=timeout,
                                    what=Fmt(iid, " status checks settled"),
                                    on_timeout=()),)),)),) if verify else ()),
            Set("reboots", 0),
            If(((flows.status_ok(status), (healthy,)),)),
            Loop(Not(AtLeast(reboots, times)), (
                Send("ec2", "RebootInstances", {"InstanceIds": [iid]}, batch_key="InstanceIds",
                     note=Fmt("reboot ", iid, " (", Plus(reboots), ")")),
                Set("reboots", Plus(reboots)),
                *after)),
            Done({"healthy": False if verify else None, "reboots": reboots}))


def _boot(instance_id: Var, settle: float, timeout: float) -> Seq:
    """After a reboot: ``vars.healthy`` true once status checks pass. Impaired checks
    ``settle`` after the reboot mean this boot crashed too (checks read sooner could
    still be the previous boot's); so do checks still not ok after ``timeout``."""
    first = min(settle, timeout)
    rest: Seq = ()
    if timeout > first:
        rest = (Await("boot_settled", "instance-status", instance_id, until=flows.settled(),
                      fail=flows.NOT_RUNNING_FAIL, timeout=timeout - first,
                      what=Fmt(instance_id, " status checks settled"), on_timeout=()),
                If(((flows.status_ok(Var("vars.boot_settled")), (Set("healthy", True),)),)))
    return (Set("healthy", False),
            Await("boot", "instance-status", instance_id, until=flows.status_ok(),
                  fail=flows.NOT_RUNNING_FAIL, timeout=first,
                  what=Fmt(instance_id, " status checks ok"), on_timeout=rest),
            If(((flows.status_ok(Var("vars.boot")), (Set("healthy", True),)),)))


@register
class VerifyStatus(ProgramAction):
    """Fail the step unless instance and system status checks pass within the timeout."""

    name = "ec2.verify_status"
    summary = "wait for status checks to pass; fail naming the impaired check"
    params = Schema(fields={"timeout": timeout_field("10m", "how long status checks may take")})
    outputs = {"status": "'ok' once the checks pass"}
    permissions = iam("ec2:DescribeInstanceStatus")
    verify = "instance and system status checks 'ok'"

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        return Plan(calls=planned("ec2:DescribeInstanceStatus"))

    def program(self, params: Mapping[str, Any]) -> Program:
        iid, status, timeout = TARGET_ID, Var("vars.status"), params["timeout"]
        return program(
            Await("status", "instance-status", iid, until=flows.status_ok(),
                  fail=flows.NOT_RUNNING_FAIL, timeout=timeout,
                  what=Fmt(iid, " status checks ok"), on_timeout=(
                      *flows.describe_checks("checks", status),
                      Fail(Fmt("status checks of ", iid,
                               f" not ok after {format_duration(timeout)}: ",
                               Var("vars.checks_instance"), ", ", Var("vars.checks_system"))))),
            Done({"status": "ok"}))
