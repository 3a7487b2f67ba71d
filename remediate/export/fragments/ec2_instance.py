"""Fragments of the instance actions: inspect, stop, start, reboot, verify_status.

Like the local actions they first read the instance and go on from the state
found (a redriven execution finishes what was started). Differences, because
ASL has no code: ``ec2.reboot`` does not first wait out a boot already in
progress (it reboots an ``initializing`` instance), and a start counts as
failed when the instance shows ``stopped`` two polls after StartInstances
(locally: once it was seen pending or its stop reason changed).
"""

from __future__ import annotations

from typing import Any, Final

from remediate.export import asl
from remediate.export.asl import Ref, Rule, State, States
from remediate.export.fragment import AslStep, Fragment, Poll, merge, poll, read
from remediate.language.durations import format_duration

GONE: Final = ("shutting-down", "terminated")
# The facts the inspect fragment gathers; a template naming another fact does not export.
FACTS: Final = ("id", "region", "account", "state", "availability_zone", "instance_type",
                "image_id", "root_device_name", "root_volume_id", "root_delete_on_termination",
                "root_encrypted")


def describe_instance(step: AslStep, name: str, next_state: str,
                      instance_id: Any = None) -> States:
    """DescribeInstances of one instance; its record lands at ``$.r.<name>.i``."""
    return {step.name(name): read(
        step, name, "ec2", "DescribeInstances",
        {"InstanceIds": [instance_id or step.target_id]},
        {"i": Ref("$.Reservations[0].Instances[0]")}, next_state)}


def state_of(step: AslStep, name: str) -> str:
    return step.at(name, "i", "State", "Name")


def wait_instance(step: AslStep, name: str, state: str, timeout: float, *,
                  instance_id: Any = None, fail_on: tuple[str, ...] = GONE,
                  extra_failed: tuple[tuple[Rule, str | Ref], ...] = ()) -> Poll:
    instance = instance_id or step.target_id
    where = step.at(name, "state")
    failed: list[tuple[Rule, str | Ref]] = []
    if fail_on:
        failed.append((asl.one_of(where, fail_on),
                       asl.fmt(instance, " is ", asl.path(where), f" instead of {state}")))
    return Poll(name, "ec2", "DescribeInstances", {"InstanceIds": [instance]},
                {"state": Ref("$.Reservations[0].Instances[0].State.Name")},
                asl.equals(where, state), timeout, f"instance state {state}",
                (*failed, *extra_failed))


def ensure_stopped(step: AslStep, prefix: str, timeout: float, force_after: float | None,
                   done: str) -> Fragment:
    """From any state to ``stopped`` (pending: wait running first; AWS refuses to stop it)."""
    start, route = step.name(prefix), step.name(prefix, "route")
    gone, call = step.name(prefix, "gone"), step.name(prefix, "call")
    state = state_of(step, prefix)
    force = force_after is not None and force_after < timeout
    running = poll(step, wait_instance(step, f"{prefix}_running", "running", timeout), call)
    stopped = poll(step, wait_instance(step, f"{prefix}_stopped", "stopped",
                                       force_after if force and force_after else timeout),
                   done, on_timeout=step.name(prefix, "force") if force else None)
    states = merge(describe_instance(step, prefix, route), running, stopped, {
        route: asl.choice([(asl.one_of(state, GONE), gone),
                           (asl.equals(state, "stopped"), done),
                           (asl.equals(state, "pending"), running.start),
                           (asl.equals(state, "running"), call)], stopped.start),
        gone: step.failure(asl.fmt(step.target_id, " is ", asl.path(state),
                                   "; it cannot be stopped")),
        call: asl.task("ec2", "StopInstances", {"InstanceIds": [step.target_id]},
                       stopped.start),
    })
    if force and force_after is not None:
        # A Windows guest crashing in a boot loop may never shut down cleanly.
        forced = poll(step, wait_instance(step, f"{prefix}_forced", "stopped",
                                          timeout - force_after), done)
        states = merge(states, forced, {step.name(prefix, "force"): asl.task(
            "ec2", "StopInstances", {"InstanceIds": [step.target_id], "Force": True},
            forced.start, comment="stop again with Force")})
    return Fragment(start, states)


def ensure_running(step: AslStep, prefix: str, timeout: float, done: str) -> Fragment:
    """From any state to ``running``; fails if it stops again after the start."""
    start, route = step.name(prefix), step.name(prefix, "route")
    gone, call = step.name(prefix, "gone"), step.name(prefix, "call")
    state = state_of(step, prefix)
    stopped_again = asl.all_of(asl.equals(step.at(f"{prefix}_running", "state"), "stopped"),
                               asl.at_least("$.poll.n", 2))
    running = poll(step, wait_instance(
        step, f"{prefix}_running", "running", timeout, extra_failed=(
            (stopped_again, asl.fmt(step.target_id, " stopped again after it was started")),)),
        done)
    stopped = poll(step, wait_instance(step, f"{prefix}_stopped", "stopped", timeout), call)
    return Fragment(start, merge(describe_instance(step, prefix, route), running, stopped, {
        route: asl.choice([(asl.one_of(state, GONE), gone),
                           (asl.equals(state, "running"), done),
                           (asl.equals(state, "stopped"), call),
                           (asl.equals(state, "stopping"), stopped.start)], running.start),
        gone: step.failure(asl.fmt(step.target_id, " is ", asl.path(state),
                                   "; it cannot be started")),
        call: asl.task("ec2", "StartInstances", {"InstanceIds": [step.target_id]},
                       running.start),
    }))


# ---- status checks ---------------------------------------------------------------------


def _status(step: AslStep, name: str, *fields: str) -> str:
    return step.at(name, "list[0]", *fields)


def status_ok(step: AslStep, name: str) -> Rule:
    return asl.all_of(asl.equals(_status(step, name, "InstanceStatus", "Status"), "ok"),
                      asl.equals(_status(step, name, "SystemStatus", "Status"), "ok"))


def not_running(step: AslStep, name: str) -> Rule:
    state = _status(step, name, "InstanceState", "Name")
    return asl.any_of(asl.present(step.at(name, "list[0]"), False),
                      asl.all_of(asl.present(state), asl.negate(asl.equals(state, "running"))))


def status_poll(step: AslStep, name: str, timeout: float) -> Poll:
    return Poll(name, "ec2", "DescribeInstanceStatus",
                {"InstanceIds": [step.target_id], "IncludeAllInstances": True},
                {"list": Ref("$.InstanceStatuses")}, status_ok(step, name), timeout,
                "status checks ok",
                ((not_running(step, name), asl.fmt(step.target_id, " is not running")),))


# ---- the actions ------------------------------------------------------------------------


def inspect(step: AslStep) -> Fragment:
    """The facts in :data:`FACTS`: the instance, then the volume at its root device."""
    root, has_root = step.name("root"), step.name("root", "found")
    unwrap, no_root, facts = step.name("root", "pick"), step.name("no_root"), step.name("facts")
    dot = step.name("delete_on_termination")
    instance = step.at("instance", "i")
    return Fragment(step.name("instance"), merge(
        describe_instance(step, "instance", root),
        {root: read(step, "root", "ec2", "DescribeVolumes", {"Filters": [
            {"Name": "attachment.instance-id", "Values": [step.target_id]},
            {"Name": "attachment.device", "Values": [asl.path(f"{instance}.RootDeviceName")]}]},
            {"list": Ref("$.Volumes")}, has_root),
         has_root: asl.choice([(asl.present(step.at("root", "list[0]")), unwrap)], no_root),
         no_root: step.failure(asl.fmt(
             step.target_id, " has nothing attached at its root device ",
             asl.path(f"{instance}.RootDeviceName"),
             ": put its root volume back (remediate run, ec2.reattach_root) first")),
         unwrap: asl.pass_state(dot, parameters={"v": Ref(step.at("root", "list[0]"))},
                                result_path=step.scratch("vol")),
         dot: _delete_on_termination(step, instance, facts),
         facts: step.done({
             "id": step.target_id, "region": step.fact("region"),
             "account": step.fact("account"),
             "state": asl.path(f"{instance}.State.Name"),
             "availability_zone": asl.path(f"{instance}.Placement.AvailabilityZone"),
             "instance_type": asl.path(f"{instance}.InstanceType"),
             "image_id": asl.path(f"{instance}.ImageId"),
             "root_device_name": asl.path(f"{instance}.RootDeviceName"),
             "root_volume_id": asl.path(step.at("vol", "v", "VolumeId")),
             "root_delete_on_termination": Ref(
                 f"States.ArrayGetItem({step.at('dot', 'found')}, 0)"),
             "root_encrypted": asl.path(step.at("vol", "v", "Encrypted")),
         })}))


def _delete_on_termination(step: AslStep, instance: str, next_state: str) -> State:
    """The root mapping's DeleteOnTermination, from the instance's block devices.

    (The volume's attachment carries it on AWS but not on moto; the mapping at
    the root device has it on both. An inline Map picks that mapping: a JSONPath
    filter cannot compare with the root device name, a value of the same record.)
    """
    match, other = step.name("mapping", "root"), step.name("mapping", "other")
    return {
        "Type": "Map", "ItemsPath": f"{instance}.BlockDeviceMappings",
        "ItemSelector": {"m.$": "$$.Map.Item.Value", "root.$": f"{instance}.RootDeviceName"},
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "INLINE"},
            "StartAt": step.name("mapping"),
            "States": {
                step.name("mapping"): asl.choice(
                    [(asl.same_as("$.m.DeviceName", "$.root"), match)], other),
                match: asl.pass_state(None, parameters={
                    "dot": asl.path("$.m.Ebs.DeleteOnTermination")}),
                other: asl.pass_state(None, result={}),
            }},
        "ResultSelector": {"found.$": "$[*].dot"},
        "ResultPath": step.scratch("dot"),
        "Next": next_state,
    }


def stop(step: AslStep) -> Fragment:
    done = step.name("done")
    body = ensure_stopped(step, "instance", step.params["timeout"],
                          step.params.get("force_after"), done)
    return Fragment(body.start, merge(body, {done: step.done(
        {"previous_state": asl.path(state_of(step, "instance"))})}))


def start(step: AslStep) -> Fragment:
    done = step.name("done")
    body = ensure_running(step, "instance", step.params["timeout"], done)
    return Fragment(body.start, merge(body, {done: step.done(
        {"previous_state": asl.path(state_of(step, "instance"))})}))


def verify_status(step: AslStep) -> Fragment:
    timeout = step.params["timeout"]
    done, late = step.name("done"), step.name("not_ok")
    checks = poll(step, status_poll(step, "status", timeout), done, on_timeout=late)
    return Fragment(checks.start, merge(checks, {
        done: step.done({"status": "ok"}),
        late: step.failure(asl.fmt(
            "status checks of ", step.target_id, f" not ok after {format_duration(timeout)}: ",
            "instance check ", asl.path(_status(step, "status", "InstanceStatus", "Status")),
            ", system check ", asl.path(_status(step, "status", "SystemStatus", "Status")))),
    }))


def reboot(step: AslStep) -> Fragment:
    """Reboot until status checks pass, at most ``times``; ``healthy`` says if they did."""
    times, timeout, verify = step.params["times"], step.params["timeout"], step.params["verify"]
    first, route = step.name("first"), step.name("first", "route")
    call, count = step.name("reboot"), step.name("count")
    again, healthy, unhealthy = step.name("again"), step.name("healthy"), step.name("unhealthy")
    not_running_state = step.name("not_running")
    reboots = asl.path("$.r.reboots.n")
    states: States = {
        first: read(step, "first", "ec2", "DescribeInstanceStatus",
                    {"InstanceIds": [step.target_id], "IncludeAllInstances": True},
                    {"list": Ref("$.InstanceStatuses")}, route),
        route: asl.choice([(not_running(step, "first"), not_running_state),
                           (status_ok(step, "first"), healthy)], call),
        not_running_state: step.failure(asl.fmt(
            step.target_id, " is not running; a reboot needs a running instance")),
        call: asl.task("ec2", "RebootInstances", {"InstanceIds": [step.target_id]}, count),
        healthy: step.done({"healthy": True, "reboots": reboots}),
        unhealthy: step.done({"healthy": False if verify else None, "reboots": reboots}),
    }
    if verify:
        # As the local action: once `settle` has passed, impaired checks mean this boot
        # crashed too, and the next reboot goes at once.
        crashed = asl.all_of(
            asl.at_least("$.poll.n", step.polls(min(step.params["settle"], timeout))),
            asl.any_of(asl.equals(_status(step, "status", "InstanceStatus", "Status"),
                                  "impaired"),
                       asl.equals(_status(step, "status", "SystemStatus", "Status"),
                                  "impaired")))
        checks = poll(step, status_poll(step, "status", timeout), healthy, on_timeout=again,
                      exits=[(crashed, again)])
        states = merge(states, checks)
        after_count = checks.start
    else:
        states[step.name("between")] = asl.wait(int(timeout), call)
        after_count = again
    states[count] = asl.pass_state(after_count, parameters={"n": asl.add(reboots, 1)},
                                   result_path="$.r.reboots")
    states[again] = asl.choice(
        [(asl.at_least("$.r.reboots.n", times), unhealthy)],
        call if verify else step.name("between"))
    # The counter starts before the first read, so every path can report it.
    init = step.name("start")
    states[init] = asl.pass_state(first, result={"n": 0}, result_path="$.r.reboots")
    return Fragment(init, states)
