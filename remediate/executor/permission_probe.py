"""Dry runs ask EC2 whether the real run would be allowed: ``DryRun=True``.

EC2 answers a request carrying ``DryRun=True`` after checking the caller's IAM
permissions and before doing anything: ``DryRunOperation`` when the call would be
allowed, ``UnauthorizedOperation`` when it would not. So a dry run can tell the
operator which permissions are missing before the real run starts, instead of
the first canary failing at 3 a.m.

One probe per (account, Region, EC2 operation) the plan would call, carrying the
first planned target's own ids, so that resource-level conditions (tags, ARNs)
are judged as for the real call; a planned call may give its own request (the
rescue launch's RunInstances: its image, type and tags, so a rescue AMI the
Region does not have answers ``InvalidAMIID.NotFound``; the backup's CreateSnapshot:
its tags, which the policy requires). The probes go through
the call layer like any call (paced, counted), which lets them through a dry run
because AWS changes nothing for them. What cannot be probed is reported
``unchecked``, with why: calls on rescue instances that do not exist yet, the
attach of a root volume (allowed only once the run has tagged it), and services
without a dry-run flag (SSM, WorkSpaces); ``remediate iam-policy`` lists what
those need.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from typing import Any

from remediate.actions.ec2_inspect import ROOT_OF_TAG
from remediate.actions.requests import AwsError, Call
from remediate.aws.apis import OPERATIONS, is_mutating
from remediate.executor.context import RunContext
from remediate.executor.events import PermissionChecked, PermissionOutcome
from remediate.executor.scheduler import Caller
from remediate.executor.steps import TargetState

Facts = Mapping[str, Any]
ProbeParams = Callable[[Facts], dict[str, Any]]


def _instance(facts: Facts) -> dict[str, Any]:
    return {"InstanceIds": [facts["id"]]}


def _root_volume(facts: Facts) -> dict[str, Any]:
    return {"VolumeId": facts["root_volume_id"]}


# EC2 operation -> the probe's parameters, from the target's facts: the same
# resources the real call names (the volume swap's calls all name the target's
# root volume or the target itself).
PROBES: Mapping[str, ProbeParams] = {
    "StopInstances": _instance,
    "StartInstances": _instance,
    "RebootInstances": _instance,
    "DetachVolume": _root_volume,
    # The tag ec2.detach_root puts on the root volume: a policy lets it set no other.
    "CreateTags": lambda f: {"Resources": [f["root_volume_id"]],
                             "Tags": [{"Key": ROOT_OF_TAG, "Value": f["id"]}]},
    "ModifyInstanceAttribute": lambda f: {
        "InstanceId": f["id"],
        "BlockDeviceMappings": [{"DeviceName": f["root_device_name"],
                                 "Ebs": {"DeleteOnTermination": bool(
                                     f.get("root_delete_on_termination", True))}}]},
    "CreateReplaceRootVolumeTask": lambda f: {"InstanceId": f["id"]},
}
ON_RESCUE_INSTANCES = frozenset({"TerminateInstances"})
# Allowed (by `remediate iam-policy`) only on a root volume the run has tagged
# remediate:root-of first, which a dry run cannot do.
ON_MARKED_VOLUMES = frozenset({"AttachVolume"})
STEP_ID = "permission-check"


def unchecked_reason(service: str, operation: str, planned_probe: bool = False) -> str | None:
    """Why ``service:operation`` cannot be probed (None: it can); ``planned_probe``: the
    planned call gave its own probe request (RunInstances: the rescue launch)."""
    if service != "ec2":
        return f"{service} has no dry-run flag; see `remediate iam-policy`"
    if operation in ON_RESCUE_INSTANCES:
        return "acts on a rescue instance that does not exist before the run"
    if operation in ON_MARKED_VOLUMES:
        return (f"allowed only for a root volume the run has tagged {ROOT_OF_TAG} (before "
                "detaching it); see `remediate iam-policy`")
    if operation not in PROBES and not planned_probe:
        return "no dry-run probe for this operation yet"
    return None


def _iam_action(api: str) -> str:
    service, _, name = api.partition(":")
    op = OPERATIONS.get(f"{service}.{name}")
    return op.iam_action if op is not None else api


def first_users(plans: Iterable[tuple[TargetState, Sequence[str]]]
                ) -> dict[tuple[str, str], dict[str, TargetState]]:
    """(account, Region) -> each mutating API the plan calls -> the first target calling it."""
    found: dict[tuple[str, str], dict[str, TargetState]] = {}
    for state, apis in plans:
        where = found.setdefault((state.target.account, state.target.region), {})
        for api in apis:
            if is_mutating(*api.split(":", 1)):
                where.setdefault(api, state)
    return found


def probe_permissions(rc: RunContext, plans: Iterable[tuple[TargetState, Sequence[str]]],
                      ) -> list[PermissionChecked]:
    """Ask EC2 about every mutating API the plan would call; publish and return the answers."""
    answers: list[PermissionChecked] = []

    def publish(event: PermissionChecked) -> None:
        answers.append(event)
        rc.bus.publish(event)

    for (account, region), users in sorted(first_users(plans).items()):
        for api, state in users.items():
            service, _, operation = api.partition(":")
            reason = unchecked_reason(service, operation, api in state.probes)
            if reason is not None:
                publish(PermissionChecked(account, region, api, _iam_action(api), "unchecked",
                                          reason, state.target.key))
                continue
            caller = Caller(account, region, state.target.key, STEP_ID)
            rc.scheduler.spawn(f"{STEP_ID} {api} {account}/{region}",
                               _probe(rc, api, operation, state, publish), caller,
                               lambda _result, _error: None)
    rc.scheduler.run()
    return sorted(answers, key=lambda a: (a.account, a.region, a.api))


def _probe(rc: RunContext, api: str, operation: str, state: TargetState,
           publish: Callable[[PermissionChecked], None]) -> Generator[Any, Any, None]:
    target = state.target
    outcome: PermissionOutcome
    try:
        params = dict(state.probes.get(api) or PROBES[operation](state.facts))
    except KeyError as exc:
        outcome, detail = "unchecked", f"inspection did not find the target's {exc.args[0]}"
    else:
        try:
            yield Call("ec2", operation, {**params, "DryRun": True}, note="permission check")
        except AwsError as exc:
            outcome, detail = _judge(exc)
        except Exception as exc:  # the probe must not hide the plan; say what happened
            outcome, detail = "unchecked", f"{type(exc).__name__}: {exc}"
        else:  # AWS never carries out a DryRun request; say so if it ever seems to
            outcome, detail = "unchecked", "AWS answered without DryRunOperation"
    publish(PermissionChecked(target.account, target.region, api, _iam_action(api), outcome,
                              detail, target.key))


def _judge(error: AwsError) -> tuple[PermissionOutcome, str]:
    if error.code == "DryRunOperation":
        return "allowed", "DryRunOperation"
    if error.code == "UnauthorizedOperation":
        return "denied", str(error)
    return "unchecked", f"EC2 answered {error}"
