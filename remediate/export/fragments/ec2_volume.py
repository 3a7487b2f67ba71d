"""Fragments of the root-volume actions: snapshot, detach, reattach, restore settings.

They reconcile like the local actions (read where the volume is, finish from
there), and tag the volume with whose root it is before detaching it. Checks
the local actions make before calling AWS (same AZ, no other volume at the
root device) are left to AWS here, which refuses those attaches itself; the
step then fails with AWS's message instead of remediate's.
"""

from __future__ import annotations

from typing import Any, Final

from remediate.actions.ec2_inspect import ROOT_DEVICE_TAG, ROOT_DOT_TAG, ROOT_OF_TAG
from remediate.export import asl
from remediate.export.asl import Ref, Rule, States
from remediate.export.fragment import AslStep, Fragment, Poll, count_select, merge, poll, read
from remediate.export.fragments.ec2_instance import (
    GONE,
    describe_instance,
    ensure_running,
    state_of,
    wait_instance,
)

VOLUME_LOST: Final = ("deleting", "deleted", "error")
SETTLING: Final = ("attaching", "detaching")


def same(where: str, value: Any) -> Rule:
    """``where`` equals ``value``, a literal or a value read at run time."""
    if isinstance(value, Ref):
        return asl.same_as(where, value.expr)
    return asl.equals(where, value)


def read_volume(step: AslStep, name: str, volume: Any, attached: str, free: str) -> States:
    """Read the volume (``$.r.<name>.v``); go to ``attached`` with its attachment at
    ``$.r.<name>_att.a``, or to ``free``."""
    start, has, pick = step.name(name), step.name(name, "attached"), step.name(name, "pick")
    attachment = step.at(name, "v", "Attachments[0]")
    return {
        start: read(step, name, "ec2", "DescribeVolumes", {"VolumeIds": [volume]},
                    {"v": Ref("$.Volumes[0]")}, has),
        has: asl.choice([(asl.present(attachment), pick)], free),
        pick: asl.pass_state(attached, parameters={"a": Ref(attachment)},
                             result_path=step.scratch(f"{name}_att")),
    }


def attachment_of(step: AslStep, name: str, field: str) -> str:
    return step.at(f"{name}_att", "a", field)


def settled(step: AslStep, name: str, volume: Any, timeout: float) -> Poll:
    """No attach or detach of the volume in flight (AWS refuses to act on it meanwhile)."""
    return Poll(name, "ec2", "DescribeVolumes", {"Filters": [
        {"Name": "volume-id", "Values": [volume]},
        {"Name": "attachment.status", "Values": list(SETTLING)}]},
        count_select("Volumes"), asl.equals(step.at(name, "n"), 0), timeout,
        "attach/detach finished")


def available(step: AslStep, name: str, volume: Any, timeout: float) -> Poll:
    state = step.at(name, "v", "State")
    return Poll(name, "ec2", "DescribeVolumes", {"VolumeIds": [volume]},
                {"v": Ref("$.Volumes[0]")}, asl.equals(state, "available"), timeout,
                "volume available",
                ((asl.one_of(state, VOLUME_LOST), asl.fmt(volume, " is ", asl.path(state))),))


def attached(step: AslStep, name: str, volume: Any, instance: Any, timeout: float,
             device: Any = None) -> Poll:
    filters = [{"Name": "volume-id", "Values": [volume]},
               {"Name": "attachment.instance-id", "Values": [instance]},
               {"Name": "attachment.status", "Values": ["attached"]}]
    if device is not None:
        filters.append({"Name": "attachment.device", "Values": [device]})
    return Poll(name, "ec2", "DescribeVolumes", {"Filters": filters}, count_select("Volumes"),
                asl.at_least(step.at(name, "n"), 1), timeout, "volume attached")


# ---- the actions ------------------------------------------------------------------------


def snapshot_root(step: AslStep) -> Fragment:
    """Reuse this run's backup of the volume if there is one, else create it; wait."""
    volume = step.value("volume_id", "root_volume_id")
    find, found, reuse = step.name("find"), step.name("find", "found"), step.name("reuse")
    create, done = step.name("create"), step.name("done")
    tags = {"remediate:run-id": step.run_id, "remediate:target": step.target_id,
            "remediate:purpose": "backup", "remediate:step": step.step_id}
    snapshot_id = asl.path(step.at("snapshot", "s", "SnapshotId"))
    after = done
    states: States = {}
    if step.params["wait"]:
        state = step.at("completed", "s", "State")
        completed = poll(step, Poll(
            "completed", "ec2", "DescribeSnapshots", {"SnapshotIds": [snapshot_id]},
            {"s": Ref("$.Snapshots[0]")}, asl.equals(state, "completed"),
            step.params["timeout"], "snapshot completed",
            ((asl.equals(state, "error"),
              asl.fmt("snapshot ", snapshot_id, " of ", volume, " failed")),)), done)
        states = merge(completed)
        after = completed.start
    filters = [{"Name": f"tag:{key}", "Values": [value]} for key, value in tags.items()]
    return Fragment(find, merge(states, {
        find: read(step, "find", "ec2", "DescribeSnapshots", {
            "OwnerIds": ["self"],
            "Filters": [*filters, {"Name": "volume-id", "Values": [volume]},
                        {"Name": "status", "Values": ["pending", "completed"]}]},
            {"list": Ref("$.Snapshots")}, found),
        found: asl.choice([(asl.present(step.at("find", "list[0]")), reuse)], create),
        reuse: asl.pass_state(after, parameters={"s": Ref(step.at("find", "list[0]"))},
                              result_path=step.scratch("snapshot")),
        create: asl.task("ec2", "CreateSnapshot", {
            "VolumeId": volume,
            "Description": asl.fmt("remediate run ", step.run_id, ": backup of ",
                                   step.target_id, " root ", volume),
            "TagSpecifications": [{"ResourceType": "snapshot", "Tags": [
                {"Key": key, "Value": value} for key, value in
                {**tags, "Name": asl.fmt(step.target_id, " root backup")}.items()]}],
        }, after, select={"s": {"SnapshotId": Ref("$.SnapshotId")}},
            result_path=step.scratch("snapshot")),
        done: step.done({"snapshot_id": snapshot_id, "volume_id": volume}),
    }))


def detach_root(step: AslStep) -> Fragment:
    volume = step.value("volume_id", "root_volume_id")
    device = step.value("device", "root_device_name")
    timeout = step.params["timeout"]
    route, free, elsewhere = step.name("route"), step.name("free"), step.name("elsewhere")
    instance, check, refuse = step.name("instance"), step.name("instance", "route"), step.name(
        "not_stopped")
    mark, call, done = step.name("mark"), step.name("detach"), step.name("done")
    settle = poll(step, settled(step, "settle", volume, timeout), step.name("volume"))
    gone = poll(step, available(step, "available", volume, timeout), done)
    stopped = poll(step, wait_instance(step, "stopped", "stopped", timeout), mark)
    holder = attachment_of(step, "volume", "InstanceId")
    state = state_of(step, "instance")
    return Fragment(step.name("volume"), merge(
        read_volume(step, "volume", volume, route, free), settle, gone, stopped,
        describe_instance(step, "instance", check), {
            route: asl.choice([
                (asl.one_of(attachment_of(step, "volume", "State"), SETTLING), settle.start),
                (asl.negate(asl.same_as(holder, step.target_id.expr)), elsewhere)], instance),
            free: asl.choice([(asl.equals(step.at("volume", "v", "State"), "available"), done)],
                             gone.start),
            check: asl.choice([(asl.equals(state, "stopped"), mark),
                               (asl.equals(state, "stopping"), stopped.start)], refuse),
            refuse: step.failure(asl.fmt(
                step.target_id, " is ", asl.path(state), ": AWS detaches a root volume only "
                "from a stopped instance; stop it first (ec2.stop)")),
            mark: asl.task("ec2", "CreateTags", {"Resources": [volume], "Tags": [
                {"Key": ROOT_OF_TAG, "Value": step.target_id},
                {"Key": ROOT_DEVICE_TAG, "Value": device},
                {"Key": ROOT_DOT_TAG, "Value": asl.fmt(step.fact("root_delete_on_termination"))},
                {"Key": "remediate:run-id", "Value": step.run_id}]}, call,
                comment="say whose root it is, in case the run is lost"),
            call: asl.task("ec2", "DetachVolume", {
                "VolumeId": volume, "InstanceId": step.target_id,
                "Device": asl.path(attachment_of(step, "volume", "Device"))}, gone.start),
            elsewhere: step.done({"volume_id": volume, "device": device,
                                  "attached_to": asl.path(holder)}),
            done: step.done({"volume_id": volume, "device": device, "attached_to": None}),
        }))


def reattach_root(step: AslStep) -> Fragment:
    """Put the root volume back at the root device, from wherever it is."""
    volume = step.value("volume_id", "root_volume_id")
    device = step.value("device", "root_device_name")
    timeout = step.params["timeout"]
    route, free = step.name("route"), step.name("free")
    take_off, check = step.name("take_off"), step.name("instance", "route")
    gone_state, call, done = step.name("instance", "gone"), step.name("attach"), step.name("done")
    settle = poll(step, settled(step, "settle", volume, timeout), step.name("volume"))
    off = poll(step, available(step, "off", volume, timeout), step.name("instance"))
    wait_free = poll(step, available(step, "available", volume, timeout), step.name("instance"))
    stopped = poll(step, wait_instance(step, "stopped", "stopped", timeout), call)
    on = poll(step, attached(step, "attached", volume, step.target_id, timeout, device), done)
    state = state_of(step, "instance")
    home = asl.all_of(asl.same_as(attachment_of(step, "volume", "InstanceId"),
                                  step.target_id.expr),
                      same(attachment_of(step, "volume", "Device"), device),
                      asl.equals(attachment_of(step, "volume", "State"), "attached"))
    return Fragment(step.name("volume"), merge(
        read_volume(step, "volume", volume, route, free), settle, off, wait_free, stopped, on,
        describe_instance(step, "instance", check), {
            route: asl.choice([
                (asl.one_of(attachment_of(step, "volume", "State"), SETTLING), settle.start),
                (home, done)], take_off),
            take_off: asl.task("ec2", "DetachVolume", {
                "VolumeId": volume,
                "InstanceId": asl.path(attachment_of(step, "volume", "InstanceId"))},
                off.start, comment="off the rescue instance (or a wrong device) first"),
            free: asl.choice([(asl.equals(step.at("volume", "v", "State"), "available"),
                               step.name("instance"))], wait_free.start),
            check: asl.choice([(asl.one_of(state, GONE), gone_state),
                               (asl.equals(state, "stopping"), stopped.start)], call),
            gone_state: step.failure(asl.fmt(step.target_id, " is ", asl.path(state), "; ",
                                             volume, " stays available")),
            call: asl.task("ec2", "AttachVolume", {
                "VolumeId": volume, "InstanceId": step.target_id, "Device": device}, on.start),
            done: step.done({"volume_id": volume, "device": device}),
        }))


def restore_root_settings(step: AslStep) -> Fragment:
    """DeleteOnTermination back to what inspection found; start the instance if it ran."""
    device = step.value("device", "root_device_name")
    wanted = step.value("delete_on_termination", "root_delete_on_termination")
    timeout = step.params["timeout"]
    check, found, nothing = step.name("mapping"), step.name("mapping", "found"), step.name(
        "nothing")
    modify, decide, observe = step.name("modify"), step.name("start"), step.name("observe")
    started, stays = step.name("started"), step.name("done")
    on = poll(step, attached(step, "attached", asl.path("$.r.mapping.v.VolumeId"),
                             step.target_id, timeout, device), modify)
    running = ensure_running(step, "instance", timeout, started)
    start = step.params.get("start")
    after = decide if start is None else running.start if start else observe
    states = merge(on, running, describe_instance(step, "observe", stays), {
        check: read(step, "mapping", "ec2", "DescribeVolumes", {"Filters": [
            {"Name": "attachment.instance-id", "Values": [step.target_id]},
            {"Name": "attachment.device", "Values": [device]}]}, {"list": Ref("$.Volumes")},
            found),
        found: asl.choice([(asl.present(step.at("mapping", "list[0]")),
                            step.name("mapping", "pick"))], nothing),
        step.name("mapping", "pick"): asl.pass_state(
            on.start, parameters={"v": Ref(step.at("mapping", "list[0]"))},
            result_path=step.scratch("mapping")),
        nothing: step.failure(asl.fmt("nothing is attached at ", device, " of ", step.target_id,
                                      "; put the root volume back first (ec2.reattach_root)")),
        modify: asl.task("ec2", "ModifyInstanceAttribute", {
            "InstanceId": step.target_id, "BlockDeviceMappings": [
                {"DeviceName": device, "Ebs": {"DeleteOnTermination": wanted}}]}, after),
        started: step.done({"delete_on_termination": wanted, "state": "running"}),
        stays: step.done({"delete_on_termination": wanted,
                          "state": asl.path(state_of(step, "observe"))}),
    })
    if start is None:
        # Start it if it was running (or pending) when inspected, like the local action.
        states[decide] = asl.choice(
            [(asl.one_of("$.target.state", ("running", "pending")), running.start)], observe)
    return Fragment(check, states)
