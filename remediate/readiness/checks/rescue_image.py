"""The rescue image resolves in the scope, and no target runs it (disk-signature collision).

The offline repair launches rescue instances from its ``rescue_image_id``: an AMI id
(regional) or ``resolve:ssm:PARAMETER`` (resolved with SSM GetParameter in each
Region, as RunInstances would). It must name an ``available`` AMI of every Region
with targets. And a target launched from that same AMI has the same disk signature
as the rescue instance's own disk: Windows then keeps the attached volume offline,
and a careless "online" may leave it unbootable (AWS's EC2Rescue guidance: use a
rescue instance of a different Windows version).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from remediate.actions.rescue_image import AMI_ID, NOT_FOUND, parameter_of
from remediate.readiness.check import Check, Settings, Verdict
from remediate.readiness.model import Rule
from remediate.readiness.region import CheckFailed, Region

RESOLVES = Rule("rescue-image-resolves", "The rescue image resolves",
                "Without an available rescue AMI in the Region no rescue instance can "
                "launch: every offline repair there is refused.")
DIFFERS = Rule("rescue-image-differs", "The rescue image differs from the target's image",
               "A rescue instance from the target's own AMI shares its disk signature: "
               "Windows may mount the wrong volume, and the repaired one may not boot.")
RESOLVE_FIX = ("set rescue_image_id to an available AMI of this Region, or to "
               "resolve:ssm:PARAMETER naming one in every Region (e.g. the default "
               "resolve:ssm:/aws/service/ami-windows-latest/Windows_Server-2022-English-Full-Base)")


def _resolve(region: Region, image: str) -> tuple[str | None, str]:
    """(the AMI id, "") or (None, why it names no available AMI here)."""
    name = parameter_of(image)
    ami = image
    if name is not None:
        try:
            response = region.call("ssm", "GetParameter", Name=name)
        except CheckFailed as exc:
            if exc.code in NOT_FOUND:
                return None, f"SSM parameter {name} does not exist"
            raise
        ami = str(response.get("Parameter", {}).get("Value", ""))
        if not re.fullmatch(AMI_ID, ami):
            return None, f"SSM parameter {name} holds {ami!r}, not an AMI id"
    images = region.call("ec2", "DescribeImages",
                         Filters=[{"Name": "image-id", "Values": [ami]}]).get("Images", [])
    if not images:
        return None, f"AMI {ami} does not exist"
    state = images[0].get("State", "")
    if state != "available":
        return None, f"AMI {ami} is {state}, not available"
    return ami, ""


def run(region: Region, settings: Settings) -> Iterator[Verdict]:
    image = settings.rescue_image
    if image is None:  # the playbook launches no rescue instance
        return
    ami, problem = _resolve(region, image)
    where = f"{region.scope.account}/{region.scope.region}"
    yield Verdict(RESOLVES, 1, [] if ami else [region.fail(
        RESOLVES, image, f"rescue image {image} does not resolve in {where}: {problem}",
        RESOLVE_FIX)])
    if ami is None:  # what the targets would collide with is unknown: reported above
        return
    shown = ami if ami == image else f"{ami} ({image})"
    yield Verdict(DIFFERS, len(region.instances), [
        region.fail(DIFFERS, instance.id,
                    f"{instance.id} runs the rescue image {shown}: disk-signature collision",
                    "set rescue_image_id to another Windows version than this target's "
                    f"(its AMI is {ami}), e.g. Windows Server 2022 for 2019 targets")
        for instance in region.instances if instance.image_id == ami])


CHECK = Check((RESOLVES, DIFFERS), run)
