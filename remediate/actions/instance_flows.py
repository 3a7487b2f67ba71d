"""Program pieces for an EC2 instance: bring it to stopped or running from wherever it
is, and its status checks as predicates (:mod:`remediate.actions.program`).

Each piece first reads the instance and goes on from the state it finds, so a step
run again (a resumed run, a reply AWS lost) finishes what it started instead of
failing on "already stopped".
"""

from __future__ import annotations

from remediate.actions import capacity_hold
from remediate.actions.list_flows import first
from remediate.actions.program import (
    RUN_FAILURE,
    All,
    AnyOf,
    Await,
    Eq,
    Exists,
    Expr,
    Fail,
    Fmt,
    If,
    In,
    Not,
    OnError,
    Pause,
    Pred,
    Read,
    Same,
    Send,
    Seq,
    Set,
    Var,
)
from remediate.actions.requests import NO_CAPACITY
from remediate.aws.resources import MISSING
from remediate.language.durations import format_duration

GONE = ("shutting-down", "terminated")
USER_STOP = "Client.UserInitiatedShutdown"
IT = Var("it")


def gone(record: Var = IT) -> tuple[tuple[Pred, Expr], ...]:
    """Wait failures: the instance no longer exists, or is shutting down/terminated."""
    return ((Exists(record, False), "the instance no longer exists"),
            (In(record.State.Name, *GONE), Fmt("the instance is ", record.State.Name, ": ",
                                              record.StateReason.Message)))


def wait_state(into: str, instance_id: Expr, state: str, timeout: Expr,
               fail: tuple[tuple[Pred, Expr], ...] = (), **more: object) -> Await:
    return Await(into, "instance", instance_id, until=Eq(IT.State.Name, state),
                 timeout=timeout, what=Fmt(instance_id, f" {state}"),
                 fail=(*gone(), *fail), **more)  # type: ignore[arg-type]


def read_instance(into: str, instance_id: Expr) -> Seq:
    """The instance's record at ``vars.<into>``; the step fails if it does not exist."""
    return (Read(into, "instance", instance_id),
            If(((Exists(Var(f"vars.{into}"), False),
                 (Fail(Fmt("instance ", instance_id, " not found")),)),)))


def _stop_call(instance_id: Expr, force: bool, skip_os_shutdown: bool) -> Send:
    params: dict[str, Expr] = {"InstanceIds": [instance_id]}
    if force:
        params["Force"] = True
    if skip_os_shutdown:
        # No graceful shutdown of the guest (StopInstances' SkipOsShutdown, AWS EC2 API
        # reference: docs.aws.amazon.com/AWSEC2/latest/APIReference/API_StopInstances.html).
        params["SkipOsShutdown"] = True
    how = ("force-stop " if force else "stop ") + ("(skipping the OS shutdown) "
                                                   if skip_os_shutdown else "")
    return Send("ec2", "StopInstances", params, batch_key="InstanceIds",
                note=Fmt(how, instance_id))


def stopped(into: str, instance_id: Expr, timeout: float, force_after: float | None,
            skip_os_shutdown: bool = False, hold_capacity: Pred | None = None) -> Seq:
    """To ``stopped`` from wherever it is (pending: wait for running first, AWS refuses to
    stop it before). The state found is at ``vars.<into>.State.Name``. With
    ``force_after``, an instance not stopped by then is stopped again with Force: a
    Windows guest crashing in a boot loop may never shut down cleanly. With
    ``skip_os_shutdown``, AWS does not wait for the guest to shut down at all
    (StopInstances ``SkipOsShutdown``, "Methods for stopping an instance",
    docs.aws.amazon.com/AWSEC2/latest/UserGuide/instance-stop-methods.html). With
    ``hold_capacity`` holding when the stop is due, its capacity is held first
    (:func:`capacity_hold.hold`): refused, the step fails before the stop."""
    state = Var(f"vars.{into}").State.Name
    force = force_after is not None and force_after < timeout
    if force and force_after is not None:
        wait: Seq = (wait_state(f"{into}_stopped", instance_id, "stopped", force_after,
                                on_timeout=(_stop_call(instance_id, True, skip_os_shutdown),
                                            wait_state(f"{into}_forced", instance_id,
                                                       "stopped", timeout - force_after))),)
    else:
        wait = (wait_state(f"{into}_stopped", instance_id, "stopped", timeout),)
    held: Seq = (() if hold_capacity is None else
                 (If(((hold_capacity, capacity_hold.hold(Var(f"vars.{into}"))),)),))
    stop = (*held, _stop_call(instance_id, False, skip_os_shutdown), *wait)
    return (*read_instance(into, instance_id),
            If(((In(state, *GONE), (Fail(Fmt(instance_id, " is ", state,
                                                 "; it cannot be stopped")),)),
                (Eq(state, "pending"), (wait_state(f"{into}_running", instance_id, "running",
                                                   timeout), *stop)),
                (Eq(state, "running"), stop),
                (Eq(state, "stopping"), wait))))


INSUFFICIENT_CAPACITY = "InsufficientInstanceCapacity"
CAPACITY_RETRIES: tuple[float, ...] = (30.0, 60.0, 120.0)
"""Seconds before each new StartInstances after InsufficientInstanceCapacity: AWS's
advice is to "wait a few minutes" ("Troubleshoot instance launch issues", EC2 User
Guide, docs.aws.amazon.com/AWSEC2/latest/UserGuide/troubleshooting-launch.html); past
this budget the step fails and says what to do rather than hold the target."""


def start_with_capacity_retries(into: str, instance_id: Expr) -> Seq:
    """StartInstances, sent again after each InsufficientInstanceCapacity
    :data:`CAPACITY_RETRIES` apart (unrolled: the same steps on both engines), then a
    failure that says where the instance is and what to do. Every other error fails the
    step as before. Nothing was started by a refused call, so there is nothing to undo:
    the instance stays stopped with its volumes attached. The failure's kind is
    ``NO_CAPACITY``: a rollback it starts does not spend this budget again
    (:func:`running`)."""
    refused = f"{into}_no_capacity"
    error = Var(f"vars.{into}_capacity_error")

    def attempt() -> Send:
        return Send("ec2", "StartInstances", {"InstanceIds": [instance_id]},
                    batch_key="InstanceIds", note=Fmt("start ", instance_id),
                    on_error=(OnError((INSUFFICIENT_CAPACITY,), (Set(refused, True),),
                                      into=f"{into}_capacity_error"),))

    steps: list[Send | Set | If] = [Set(refused, False), attempt()]
    for delay in CAPACITY_RETRIES:
        steps.append(If(((Eq(Var(f"vars.{refused}"), True),
                          (Pause(delay), Set(refused, False), attempt())),)))
    waited = format_duration(sum(CAPACITY_RETRIES))
    steps.append(If(((Eq(Var(f"vars.{refused}"), True), (Fail(kind=NO_CAPACITY, message=Fmt(
        "no capacity to start ", instance_id, f": {len(CAPACITY_RETRIES) + 1} attempts over "
        f"{waited} were refused (", error.Cause, "). It is stopped, with its root volume "
        "attached: start it again in a few minutes (aws ec2 start-instances --instance-ids ",
        instance_id, ", or run again with --retry-failed), or change its instance type "
        "while it is stopped; it cannot move to another Availability Zone, its volumes "
        "are in this one.")),)),)))
    return tuple(steps)


def running(into: str, instance_id: Expr, timeout: float) -> Seq:
    """To ``running`` from wherever it is; fails if it stops again after the start (for a
    reason other than the stop it had: an unusable KMS key, say). The state found is at
    ``vars.<into>.State.Name``. Capacity an ``ec2.stop`` held for it is opened just
    before the start and released once it runs (:mod:`remediate.actions.capacity_hold`).

    In a rollback started by a start refused for capacity (``run.failure`` is
    ``NO_CAPACITY``), it is not started again: that start has just spent its retries
    (:func:`start_with_capacity_retries`) and said what to do; the rollback step fails
    with a short note, leaving it stopped with the rest of the rollback done."""
    record = Var(f"vars.{into}")
    state = record.State.Name
    stopped_again = (Eq(IT.State.Name, "stopped"),
                     Fmt("the instance stopped again: ", IT.StateReason.Message))
    # A read right after StartInstances may still show the old stop: a stop counts once
    # the instance was seen pending, or when its reason changed.
    before = Var(f"vars.{into}_reason")
    new_stop = All(Eq(IT.State.Name, "stopped"), Exists(IT.StateReason.Code),
                   Not(Eq(IT.StateReason.Code, USER_STOP)), Not(Same(IT.StateReason.Code, before)))
    start = (If(((Eq(RUN_FAILURE, NO_CAPACITY), (Fail(Fmt(
                 instance_id, " not started again: no capacity, as above")),)),)),
             Set(f"{into}_reason", record.StateReason.Code),
             *capacity_hold.opened(into, instance_id),
             *start_with_capacity_retries(into, instance_id),
             wait_state(f"{into}_started", instance_id, "running", timeout,
                        fail=((new_stop, stopped_again[1]),),
                        exits=((Eq(IT.State.Name, "pending"),
                                (wait_state(f"{into}_running", instance_id, "running",
                                            timeout, fail=(stopped_again,)),)),)),
             *capacity_hold.released(into, instance_id))
    return (*read_instance(into, instance_id),
            If(((In(state, *GONE), (Fail(Fmt(instance_id, " is ", state,
                                                 "; it cannot be started")),)),
                (Eq(state, "stopping"), (wait_state(f"{into}_stopped", instance_id, "stopped",
                                                    timeout), *start)),
                (Eq(state, "stopped"), start),
                (Eq(state, "pending"), (wait_state(f"{into}_running", instance_id, "running",
                                                   timeout, fail=(stopped_again,)),)))))


# ---- status checks ------------------------------------------------------------------


def status_ok(record: Var = IT) -> Pred:
    return All(Eq(record.InstanceState.Name, "running"),
               Eq(record.InstanceStatus.Status, "ok"), Eq(record.SystemStatus.Status, "ok"))


def impaired(record: Var = IT) -> Pred:
    return All(Eq(record.InstanceState.Name, "running"),
               AnyOf(Eq(record.InstanceStatus.Status, "impaired"),
                     Eq(record.SystemStatus.Status, "impaired")))


def not_running(record: Var = IT) -> Pred:
    return AnyOf(Exists(record, False), Not(Eq(record.InstanceState.Name, "running")))


def settled(record: Var = IT) -> Pred:
    """Status checks have a verdict: ok or impaired (not initializing)."""
    return AnyOf(status_ok(record), impaired(record))


NOT_RUNNING_FAIL: tuple[tuple[Pred, Expr], ...] = (
    (not_running(), Fmt("the instance is ", IT.InstanceState.Name)),)


def describe_checks(into: str, record: Var) -> Seq:
    """``vars.<into>_instance`` and ``vars.<into>_system``: each check in words, with its
    first detail when it is not passed ("instance check impaired (reachability failed)",
    "system check ok")."""
    steps: list[Set | If] = []
    for key, label in (("InstanceStatus", "instance"), ("SystemStatus", "system")):
        check = Var(f"{record.path}.{key}")
        # Copied first: a path ending in "[0].Name" reads differently on moto (see
        # remediate.export.asl).
        steps.append(Set(f"{into}_{label}_detail", check.Details.at(0)))
        detail = Var(f"vars.{into}_{label}_detail")
        plain = Fmt(f"{label} check ", check.Status)
        steps.append(If(((All(Exists(detail.Name), Not(Eq(detail.Status, "passed"))),
                          (Set(f"{into}_{label}", Fmt(plain, " (", detail.Name, " ",
                                                      detail.Status, ")")),)),),
                        orelse=(Set(f"{into}_{label}", plain),)))
    return tuple(steps)


def health(into: str, record: Var) -> Seq:
    """``vars.<into>``: an instance-status record's checks in one word, as
    :func:`remediate.aws.resources.instance_health` says them (a check not reported yet
    counts as initializing)."""
    checks = (record.InstanceStatus.Status, record.SystemStatus.Status)
    reported = All(*(Exists(c) for c in checks), *(Not(Eq(c, "initializing")) for c in checks))
    return (If(((Exists(record, False), (Set(into, MISSING),)),
                (Not(Eq(record.InstanceState.Name, "running")), (Set(into, "not-running"),)),
                (AnyOf(*(Eq(c, "impaired") for c in checks)), (Set(into, "impaired"),)),
                (All(AnyOf(*(Eq(c, "insufficient-data") for c in checks)), reported),
                 (Set(into, "insufficient-data"),)),
                (All(*(Eq(c, "ok") for c in checks)), (Set(into, "ok"),))),
               orelse=(Set(into, "initializing"),)),)


def root_mapping(into: str, instance: Var) -> Seq:
    """``vars.<into>``: the instance's block device mapping at its root device (None:
    nothing is attached there)."""
    return first(into, instance.BlockDeviceMappings,
                 lambda mapping: Same(mapping.DeviceName, instance.RootDeviceName))
