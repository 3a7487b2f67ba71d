"""Facts many targets share, as :class:`~remediate.actions.program.Native` steps of
``ec2.inspect``: an instance type's storage, a KMS key's state, whether a public IP is
an Elastic IP, the rescue image of a Region.

Locally each is asked once per run (:class:`SharedAnswers`): the first target to ask
fetches, the others read its answer, so 10,000 m5.large targets cost one
DescribeInstanceTypes call. That cache lives across targets, which a program (one
target's steps) cannot hold: hence Natives. On Step Functions each iteration is on its
own, so each counterpart asks for its own target (written as program steps, compiled
in place): one call per target instead of one per run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from remediate.actions import kms_access, manageability, rescue_image
from remediate.actions.contract import StepContext
from remediate.actions.interpret import evaluate
from remediate.actions.optional_reads import optional
from remediate.actions.program import (
    ANY_ERROR,
    AtLeast,
    Count,
    Eq,
    Exists,
    Get,
    If,
    Native,
    OnError,
    Seq,
    Set,
    Var,
    flag,
)
from remediate.actions.requests import AwsError, Call
from remediate.actions.shared_answers import SharedAnswers, Steps
from remediate.aws.errors import ACCESS_DENIED_CODES
from remediate.aws.principal import Attacher

DENIED = tuple(sorted(ACCESS_DENIED_CODES))


def _native(name: str, into: str, local: Any, steps: Seq, outputs: Mapping[str, Any],
            why: str) -> Native:
    """A Native whose Step Functions counterpart is ``steps``, then ``outputs`` stored at
    ``vars.<into>`` (what ``local`` returns)."""
    return Native(name, into, local, None, why, counterpart=(*steps, Set(into, dict(outputs))))


# ---- an instance type's instance store ------------------------------------------------


def _instance_store(ctx: StepContext, instance_type: str) -> Steps:
    shared = ctx.service(SharedAnswers)

    def fetch() -> Steps:
        response = yield Call("ec2", "DescribeInstanceTypes", {"InstanceTypes": [instance_type]},
                              batch_key="InstanceTypes", note=f"storage of {instance_type}")
        # A merged call answers for other types too: keep them all.
        for info in response.get("InstanceTypes") or []:
            key = f"instance-store:{ctx.target.region}:{info['InstanceType']}"
            shared.answers[key] = bool(info.get("InstanceStorageSupported"))
        return shared.answers.get(f"instance-store:{ctx.target.region}:{instance_type}", False)

    return (yield from shared.ask(ctx, f"instance-store:{ctx.target.region}:{instance_type}",
                                  fetch))


def instance_store(into: str, instance_type: Var) -> Native:
    """``vars.<into>.supported``: whether instances of ``instance_type`` have an instance
    store (DescribeInstanceTypes; merged across types locally)."""
    def local(ctx: StepContext, params: Mapping[str, Any], scope: Mapping[str, Any]) -> Steps:
        kind = str(evaluate(instance_type, scope))
        return {"supported": (yield from _instance_store(ctx, kind))}

    found = Var(f"vars.{into}_type")
    return _native("instance store", into, local, (
        Get(f"{into}_types", "ec2", "DescribeInstanceTypes", {"InstanceTypes": [instance_type]},
            pick={"list": "InstanceTypes[*]"}),
        Set(f"{into}_type", Var(f"vars.{into}_types.list").at(0)),
        flag(f"{into}_yes", Eq(found.InstanceStorageSupported, True)),
    ), {"supported": Var(f"vars.{into}_yes")}, why="asked once per run and instance type")


# ---- a KMS key's state ------------------------------------------------------------------


def _kms_key_usable(ctx: StepContext, key_id: str) -> Steps:
    def fetch() -> Steps:
        try:
            response = yield Call("kms", "DescribeKey", {"KeyId": key_id})
        except AwsError as exc:
            if exc.code == "NotFoundException":
                return False
            return None  # no permission, or KMS unreachable: unknown, not "broken"
        return response.get("KeyMetadata", {}).get("KeyState") == "Enabled"

    return (yield from ctx.service(SharedAnswers).ask(
        ctx, f"kms-key:{ctx.target.region}:{key_id}", fetch))


def kms_key_usable(into: str, key_id: Var) -> Native:
    """``vars.<into>.usable``: whether the key is enabled; False when KMS does not know
    it, None when it cannot be asked (no permission, KMS unreachable)."""
    def local(ctx: StepContext, params: Mapping[str, Any], scope: Mapping[str, Any]) -> Steps:
        return {"usable": (yield from _kms_key_usable(ctx, str(evaluate(key_id, scope))))}

    usable, key = f"{into}_usable", Var(f"vars.{into}_key")
    return _native("KMS key state", into, local, (
        Set(usable, None),
        Get(f"{into}_key", "kms", "DescribeKey", {"KeyId": key_id},
            pick={"state": "KeyMetadata.KeyState"},
            on_error=(OnError(("NotFoundException",), (Set(usable, False),)),
                      OnError((ANY_ERROR,), ()))),
        If(((Exists(key), (flag(usable, Eq(key.state, "Enabled")),)),)),
    ), {"usable": Var(f"vars.{usable}")}, why="asked once per run and key")


def _kms_key_access(ctx: StepContext, key_id: str, attacher: Attacher | None) -> Steps:
    account, region = ctx.target.account, ctx.target.region
    shared = ctx.service(SharedAnswers)

    def who() -> Steps:
        return (yield from kms_access.caller())

    def fetch() -> Steps:
        if attacher is not None:
            access = yield from kms_access.check(key_id, (attacher.arn, attacher.account), region)
            return replace(access, role=attacher.role).fact()
        caller = yield from shared.ask(ctx, f"caller:{account}:{region}", who)
        return (yield from kms_access.check(key_id, caller, region)).fact()

    as_role = f":{attacher.arn}" if attacher is not None else ""
    return (yield from shared.ask(ctx, f"kms-access:{account}:{region}:{key_id}{as_role}", fetch))


def kms_key_access(into: str, key_id: Var, attacher: Attacher | None = None) -> Native:
    """``vars.<into>.fact``: whether the identity that attaches the volume may use the key
    through EC2 (:mod:`remediate.actions.kms_access`), for the pre-flight's
    ``kms-key-denied`` and ``kms-key-unchecked`` findings: ``attacher`` (a role the run
    will attach as), else the caller.

    Step Functions counterpart: None (not read), as :func:`rescue_image_facts`: the
    pre-flight judges it locally before an execution starts."""
    def local(ctx: StepContext, params: Mapping[str, Any], scope: Mapping[str, Any]) -> Steps:
        return {"fact": (yield from _kms_key_access(ctx, str(evaluate(key_id, scope)),
                                                    attacher))}

    return _native("KMS key access", into, local, (), {"fact": None},
                   why="read once per run, account, Region and key")


# ---- Elastic IPs --------------------------------------------------------------------------


def _elastic_ips(ctx: StepContext) -> Steps:
    def fetch() -> Steps:
        response = yield from optional(Call("ec2", "DescribeAddresses", {}))
        if response is None:
            return None
        return frozenset(a["PublicIp"] for a in response.get("Addresses") or [] if "PublicIp" in a)

    return (yield from ctx.service(SharedAnswers).ask(
        ctx, f"elastic-ips:{ctx.target.account}:{ctx.target.region}", fetch))


def elastic_ip(into: str, public_ip: Var) -> Native:
    """``vars.<into>.elastic``: whether ``public_ip`` is one of the Region's Elastic IPs
    (None: they cannot be listed). Locally all of them are listed once per run; on Step
    Functions each iteration asks for its own address."""
    def local(ctx: StepContext, params: Mapping[str, Any], scope: Mapping[str, Any]) -> Steps:
        elastic = yield from _elastic_ips(ctx)
        ip = evaluate(public_ip, scope)
        return {"elastic": None if elastic is None else ip in elastic}

    yes, listed = f"{into}_yes", Var(f"vars.{into}_addresses")
    return _native("Elastic IPs", into, local, (
        Set(yes, None),
        Get(f"{into}_addresses", "ec2", "DescribeAddresses",
            {"Filters": [{"Name": "public-ip", "Values": [public_ip]}]},
            pick={"ips": "Addresses[*].PublicIp"}, on_error=(OnError(DENIED, ()),)),
        If(((Exists(listed), (Set(f"{into}_count", Count(listed.ips)),
                              flag(yes, AtLeast(Var(f"vars.{into}_count"), 1)))),)),
    ), {"elastic": Var(f"vars.{yes}")}, why="listed once per run, account and Region")


# ---- the rescue image --------------------------------------------------------------------


def _rescue_image_state(ctx: StepContext, image_id: str) -> Steps:
    """The rescue AMI's state in the target's Region, once per account and Region:
    ``not found`` when the Region has no such image, None when it cannot be read."""
    def fetch() -> Steps:
        response = yield from optional(Call(
            "ec2", "DescribeImages", {"Filters": [{"Name": "image-id", "Values": [image_id]}]},
            note=f"rescue image {image_id}"))
        if response is None:
            return None
        images = response.get("Images") or []
        return str(images[0].get("State") or "available") if images else "not found"

    return (yield from ctx.service(SharedAnswers).ask(
        ctx, f"rescue-image:{ctx.target.account}:{ctx.target.region}:{image_id}", fetch))


def _rescue_image(ctx: StepContext, image: str) -> Steps:
    """The AMI ``image`` names in the target's Region (itself, or what its resolve:ssm:
    parameter holds there), and its state; the state says why when the parameter names
    no AMI (None: unknown)."""
    resolution = yield from rescue_image.resolve(ctx, image)
    if resolution.image_id is None:
        state = rescue_image.UNRESOLVED + resolution.problem if resolution.readable else None
        return {"image_id": None, "state": state}
    return {"image_id": resolution.image_id,
            "state": (yield from _rescue_image_state(ctx, resolution.image_id))}


def rescue_image_facts(into: str, image: str) -> Native:
    """``vars.<into>.image_id`` and ``.state``: the rescue AMI ``image`` names in the
    target's Region, and its state, for the pre-flight's ``rescue-image-unusable``
    finding.

    Step Functions counterpart: both None (not read). The finding is judged by the
    pre-flight before an execution starts (``remediate run --engine stepfunctions``),
    and ``rescue.attach_volume`` resolves and checks the image in its own states, so
    reading it here too would double those calls for every target.
    """
    def local(ctx: StepContext, params: Mapping[str, Any], scope: Mapping[str, Any]) -> Steps:
        return (yield from _rescue_image(ctx, image))

    return _native("rescue image", into, local, (), {"image_id": None, "state": None},
                   why="resolved and read once per run, account and Region")


# ---- whether rescue instances would be SSM-managed ----------------------------------------


def _rescue_ssm(ctx: StepContext, profile: str | None) -> Steps:
    account, region = ctx.target.account, ctx.target.region

    def fetch() -> Steps:
        return (yield from manageability.check(profile, account, region))

    found: manageability.Manageability = yield from ctx.service(SharedAnswers).ask(
        ctx, f"rescue-ssm:{account}:{region}:{profile or ''}", fetch)
    return {"fact": found.fact()}


def rescue_ssm_facts(into: str, profile: str | None) -> Native:
    """``vars.<into>.fact``: how rescue instances launched with ``profile`` would reach
    SSM in the target's account and Region (:mod:`remediate.actions.manageability`), for
    the pre-flight's ``rescue-unmanageable`` finding.

    Step Functions counterpart: None (not read), as :func:`rescue_image_facts`: the
    pre-flight judges it before an execution starts."""
    def local(ctx: StepContext, params: Mapping[str, Any], scope: Mapping[str, Any]) -> Steps:
        return (yield from _rescue_ssm(ctx, profile))

    return _native("rescue SSM", into, local, (), {"fact": None},
                   why="read once per run, account and Region")
