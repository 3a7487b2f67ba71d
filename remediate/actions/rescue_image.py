"""The rescue image: an AMI id, or ``resolve:ssm:PARAMETER`` as RunInstances takes it.

AMI ids are regional, so one ``ami-...`` cannot launch rescue instances in every
Region of a run. ``resolve:ssm:/aws/service/ami-windows-latest/Windows_Server-2022-
English-Full-Base`` names the same image everywhere: AWS keeps that public SSM
parameter in every Region, each pointing at the Region's own AMI. remediate
resolves it itself (SSM ``GetParameter``) once per account and Region for the
whole run: inspection asks first and the attach step reads the same answer, so
the same-image guard, the ``rescue-image-unusable`` finding, the audit and the
launch all see the one AMI id the rescue instances run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from remediate.actions.contract import StepContext
from remediate.actions.requests import AwsError, Call, StepFailed
from remediate.actions.shared_answers import SharedAnswers, Steps
from remediate.aws.errors import ACCESS_DENIED_CODES
from remediate.language.schema import Str

SSM_PREFIX: Final = "resolve:ssm:"
AMI_ID: Final = r"ami-[0-9a-f]{8,17}"
# SSM parameter names: letters, digits and _.-/ (up to 2048); then :VERSION or :LABEL.
IMAGE: Final = AMI_ID + "|" + SSM_PREFIX + r"[A-Za-z0-9_./-]{1,2048}(:[A-Za-z0-9_.-]{1,100})?"
IMAGE_NAME: Final = "an AMI id (ami-...) or resolve:ssm:PARAMETER"
NOT_FOUND: Final[frozenset[str]] = frozenset({"ParameterNotFound", "ParameterVersionNotFound"})
# How the rescue_image_state fact starts when the parameter names no AMI.
UNRESOLVED: Final = "unresolved: "


def image_node(templated: bool = False) -> Str:
    """The schema of a ``rescue_image_id`` parameter."""
    return Str(pattern=IMAGE, pattern_name=IMAGE_NAME, templated=templated)


def parameter_of(image: str) -> str | None:
    """The SSM parameter ``resolve:ssm:NAME`` names (None for an AMI id)."""
    return image.removeprefix(SSM_PREFIX) if image.startswith(SSM_PREFIX) else None


def shown(image_id: str | None, image: str) -> str:
    """``ami-0abc (resolve:ssm:/x)``: the AMI id, and the parameter it came from."""
    if image_id is None or image_id == image:
        return image
    return f"{image_id} ({image})"


def unresolved(image: str, region: str, problem: str) -> str:
    return f"rescue image {image} does not resolve in {region} ({problem})"


@dataclass(frozen=True)
class Resolution:
    """What ``rescue_image_id`` names in one account and Region."""

    image_id: str | None  # the AMI id; None when it names none there
    problem: str = ""  # why not
    readable: bool = True  # False: the parameter could not be read (no permission)


def _key(ctx: StepContext, image: str) -> str:
    return f"rescue-image-parameter:{ctx.target.account}:{ctx.target.region}:{image}"


def resolve(ctx: StepContext, image: str) -> Steps:
    """The :class:`Resolution` of ``image`` in the target's account and Region: one
    ``GetParameter`` per account, Region and parameter for the whole run."""
    name = parameter_of(image)
    if name is None:
        return Resolution(image)

    def fetch() -> Steps:
        try:
            response = yield Call("ssm", "GetParameter", {"Name": name},
                                  note=f"rescue image {image}")
        except AwsError as exc:
            if exc.code in NOT_FOUND:
                return Resolution(None, f"SSM parameter {name} does not exist")
            if exc.code in ACCESS_DENIED_CODES:
                return Resolution(None, f"SSM parameter {name} could not be read: {exc}",
                                  readable=False)
            raise StepFailed(f"GetParameter for {image} failed: {exc}") from exc
        value = str((response.get("Parameter") or {}).get("Value", ""))
        if not re.fullmatch(AMI_ID, value):
            return Resolution(None, f"SSM parameter {name} holds {value!r}, not an AMI id")
        return Resolution(value)

    return (yield from ctx.service(SharedAnswers).ask(ctx, _key(ctx, image), fetch))


def resolved(ctx: StepContext, image: str) -> Steps:
    """The AMI id the rescue instances of the target's Region run; fails the step when
    ``image`` names none there."""
    resolution: Resolution = yield from resolve(ctx, image)
    if resolution.image_id is None:
        raise StepFailed(unresolved(image, ctx.target.region, resolution.problem))
    return resolution.image_id


def known(ctx: StepContext, image: str) -> str | None:
    """The AMI id without asking AWS (a dry run's plan): ``image`` itself, or what this
    run resolved it to already (inspection does, first); None if it did not."""
    if parameter_of(image) is None:
        return image
    answer = ctx.service(SharedAnswers).answers.get(_key(ctx, image))
    return answer.image_id if isinstance(answer, Resolution) else None
