"""Merging calls and the per-bucket queues (pure: no scheduler needed)."""

from __future__ import annotations

from typing import Any

from remediate.actions.requests import Call
from remediate.aws.apis import operation
from remediate.clock import VirtualClock
from remediate.executor.batching import Lane, Pending, batch_ids, merge, ready_for_window
from remediate.executor.scheduler import Caller, Scheduler, Task, Ticket

SCHEDULER = Scheduler(VirtualClock(), workers=1)


def pending(call: Call, at: float = 0.0, live: bool = True) -> Pending:
    op = operation(call.service, call.operation)
    task = Task("t", iter(()), Caller("a", "r", "k"), lambda *_: None)  # type: ignore[arg-type]
    ticket = Ticket(SCHEDULER, task)
    ticket.done = not live
    return Pending(ticket, call, op, task.caller, at, ids=batch_ids(call, op))


def stop(*ids: str, **extra: Any) -> Call:
    return Call("ec2", "StopInstances", {"InstanceIds": list(ids), **extra},
                batch_key="InstanceIds")


def test_only_a_call_naming_the_operations_batch_key_can_merge() -> None:
    op = operation("ec2", "StopInstances")

    assert batch_ids(stop("i-1", "i-2"), op) == ["i-1", "i-2"]
    assert batch_ids(Call("ec2", "StopInstances", {"InstanceIds": ["i-1"]}), op) == []
    assert batch_ids(Call("ec2", "StopInstances", {"InstanceIds": ["i-1"]},
                          batch_key="Other"), op) == []
    assert batch_ids(stop(), op) == []


def test_merge_concatenates_ids_once_and_keeps_the_other_params() -> None:
    members = [pending(stop("i-1", Force=True)), pending(stop("i-2", "i-1", Force=True))]

    params, count = merge(members)

    assert params == {"InstanceIds": ["i-1", "i-2"], "Force": True}
    assert count == 2


def test_merge_dedupes_structured_entries_too() -> None:
    reboot = [Call("workspaces", "RebootWorkspaces",
                   {"RebootWorkspaceRequests": [{"WorkspaceId": w}]},
                   batch_key="RebootWorkspaceRequests") for w in ("ws-1", "ws-2", "ws-1")]

    params, count = merge([pending(c) for c in reboot])

    assert params == {"RebootWorkspaceRequests": [{"WorkspaceId": "ws-1"},
                                                  {"WorkspaceId": "ws-2"}]}
    assert count == 2


def test_a_lane_groups_by_other_params_in_order_of_arrival() -> None:
    lane = Lane()
    for call in (stop("i-1"), stop("i-2", Force=True), stop("i-3"), stop("i-4", Force=True)):
        lane.add(pending(call))

    first = lane.take(limit=1000)
    second = lane.take(limit=1000)

    assert [m.ids for m in first] == [["i-1"], ["i-3"]]
    assert [m.ids for m in second] == [["i-2"], ["i-4"]]
    assert not lane


def test_take_stops_at_the_limit_and_the_resource_capacity() -> None:
    lane = Lane()
    for n in range(10):
        lane.add(pending(stop(f"i-{n}", f"j-{n}")))

    assert len(lane.take(limit=5)) == 2  # 4 ids; a third member would make 6
    assert len(lane.take(limit=100, capacity=3.5)) == 1
    assert len(lane.take(limit=100, capacity=0.2)) == 1  # never less than one member
    assert len(lane.take(limit=100)) == 6


def test_cancelled_members_are_dropped_and_empty_groups_vanish() -> None:
    lane = Lane()
    lane.add(pending(stop("i-1"), live=False))
    lane.add(pending(Call("ec2", "DetachVolume", {"VolumeId": "v"}), live=False))
    lane.add(pending(stop("i-2")))

    assert lane.head() is not None
    assert [m.ids for m in lane.take(limit=10)] == [["i-2"]]
    assert lane.head() is None


def test_calls_that_cannot_batch_never_share_a_request() -> None:
    lane = Lane()
    detach = Call("ec2", "DetachVolume", {"VolumeId": "vol-1"})
    lane.add(pending(detach))
    lane.add(pending(detach))

    assert len(lane.take(limit=1000)) == 1
    assert len(lane.take(limit=1000)) == 1


def test_a_window_holds_a_group_until_it_is_old_or_full() -> None:
    young = [pending(stop("i-1"), at=10.0), pending(stop("i-2"), at=11.0)]

    assert ready_for_window(young, now=11.0, window=2.0, limit=1000) == 12.0
    assert ready_for_window(young, now=12.0, window=2.0, limit=1000) is None
    assert ready_for_window(young, now=11.0, window=2.0, limit=2) is None
    assert ready_for_window(young, now=11.0, window=0.0, limit=1000) is None


def test_a_call_that_does_not_batch_still_counts_the_instances_it_names() -> None:
    alone = pending(Call("ec2", "StopInstances", {"InstanceIds": ["i-1", "i-2", "i-3"]}))
    detach = pending(Call("ec2", "DetachVolume", {"VolumeId": "vol-1"}))

    assert merge([alone]) == ({"InstanceIds": ["i-1", "i-2", "i-3"]}, 3)
    assert (alone.size, detach.size) == (3, 1)
