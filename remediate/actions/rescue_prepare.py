"""rescue.prepare: start a rescue instance booting before the first volume needs it.

A rescue instance takes minutes to run with its SSM agent Online; launched only
when the first volume of an AZ asks for a slot, that wait lies on every early
target's path and holds EC2's mutating bucket idle. Put first in a playbook, this
step launches one per AZ (the first target of each AZ launches it, the others
find it; one more for each ``volumes_per_instance`` targets that ask, up to
``max_per_az``) and returns at once, so they boot while the targets are backed
up and stopped. It takes rescue.attach_volume's launch parameters.

Everything it does is about the run-wide pool (how many targets of an AZ asked so far,
what is launching there), so its program is one
:class:`~remediate.actions.program.Native`. On Step Functions each target launches its
own rescue instance at the attach (:mod:`remediate.actions.rescue_natives`): there the
step does nothing and says so (an empty ``rescue_instance_id``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from remediate.actions import rescue_image
from remediate.actions.contract import Plan, StepContext, calls
from remediate.actions.interpret import Scope
from remediate.actions.program import Done, Native, Program, Set, Var, program
from remediate.actions.programmed import ProgramAction
from remediate.actions.registry import register
from remediate.actions.requests import StepFailed
from remediate.actions.rescue import LAUNCH_FIELDS, same_image_error
from remediate.actions.rescue_launch import Pulled, config_of, probe_request
from remediate.actions.rescue_permissions import LAUNCH
from remediate.actions.rescue_pool import RescuePool
from remediate.language.schema import Record


@register
class Prepare(ProgramAction):
    name = "rescue.prepare"
    summary = ("Launch a rescue instance in the target's AZ if the targets that asked so "
               "far need more slots than the AZ has, without waiting for it (it boots while "
               "the steps before the attach run).")
    params = Record(fields=dict(LAUNCH_FIELDS))
    outputs = {"rescue_instance_id": "the rescue instance it launched (empty if the AZ "
                                     "had room enough, or the image may not be used)"}
    permissions = ("ec2:DescribeInstances", "ec2:DescribeImages", "ec2:DescribeSubnets",
                   "ec2:RunInstances", "ec2:CreateTags", "iam:PassRole", "ssm:GetParameter")
    scoped_permissions = LAUNCH
    mutating = True
    beside_target = True
    verify = "rescue.attach_volume finds the instance in the pool"
    # No undo: the run terminates its rescue instances at its end (RescuePool.finish).

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        image = params["rescue_image_id"]
        image_id = rescue_image.known(ctx, image)
        probe = probe_request(ctx.run_id, ctx.facts.get("availability_zone"),
                              config_of(params, image_id or image))
        return Plan(calls("ec2:RunInstances", note="one target in each volumes_per_instance",
                          probe=probe),
                    note=f"launch a rescue instance in {ctx.facts.get('availability_zone')} "
                         "ahead of the attach, unless the AZ has room for this target")

    def program(self, params: Mapping[str, Any]) -> Program:
        return program(
            Native("launch ahead", into="ahead", local=_launch_ahead, asl=None,
                   why="whether a target needs an instance launched depends on the targets "
                       "of its AZ that asked before it (the run's pool)",
                   counterpart=(Set("ahead", {"rescue_instance_id": ""}),)),
            Done({"rescue_instance_id": Var("vars.ahead.rescue_instance_id")}))


def _launch_ahead(ctx: StepContext, params: Mapping[str, Any], scope: Scope) -> Pulled:
    image = params["rescue_image_id"]
    config = config_of(params, (yield from rescue_image.resolved(ctx, image)))
    if same_image_error(ctx, config.image_id, image):
        return {"rescue_instance_id": ""}  # rescue.attach_volume refuses it, saying why
    az = ctx.facts.get("availability_zone")
    if not az:
        raise StepFailed(f"{ctx.target.id} has no availability_zone fact")
    launched = yield from ctx.service(RescuePool).launch_ahead(ctx, config, str(az))
    return {"rescue_instance_id": launched}
