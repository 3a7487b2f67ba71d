"""Pre-flight: from a target's facts to findings, and from findings to "may it go on".

Both are pure functions of data (facts from the kind's inspect action, the
operator's ``--accept`` list, the playbook's actions), so a dry run, a real run
and a resumed run judge a target the same way, and every rule is unit-tested
without AWS. Each finding's detail names the target's own values, because an SRE
reading "refused" for target #4,312 needs to see why for that one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from remediate.actions import kms_access, manageability
from remediate.actions.rescue_image import UNRESOLVED, shown, unresolved
from remediate.findings import FINDINGS, Finding

Facts = Mapping[str, Any]
Rule = Callable[[Facts, str | None], str | None]


def _instance_store(facts: Facts, _rescue: str | None) -> str | None:
    if facts.get("instance_store"):
        return (f"{facts.get('id')} is a {facts.get('instance_type')}, whose instance-store "
                "volumes are erased when it stops")
    return None


def _spot_one_time(facts: Facts, _rescue: str | None) -> str | None:
    if facts.get("lifecycle") == "spot" and facts.get("spot_request_type") == "one-time":
        return f"{facts.get('id')} is a one-time Spot instance: StopInstances is refused for it"
    return None


def _spot_persistent(facts: Facts, _rescue: str | None) -> str | None:
    if facts.get("lifecycle") != "spot":
        return None
    kind = facts.get("spot_request_type")
    if kind == "persistent":
        return (f"{facts.get('id')} is a persistent Spot instance: started without its root "
                "volume, EC2 terminates it")
    if kind != "one-time":
        # Unknown type: the stop may fail (one-time), or a start without the root may
        # terminate it (persistent); the second is the one to make the operator see.
        return (f"{facts.get('id')} is a Spot instance whose request type could not be read; "
                "treated as persistent (started without its root volume, EC2 terminates it)")
    return None


def _stop_protection(facts: Facts, _rescue: str | None) -> str | None:
    if facts.get("stop_protection"):
        return f"{facts.get('id')} has DisableApiStop set, so StopInstances is refused"
    return None


def _kms_key_unusable(facts: Facts, _rescue: str | None) -> str | None:
    if facts.get("root_encrypted") and facts.get("kms_key_usable") is False:
        return (f"root volume {facts.get('root_volume_id')} of {facts.get('id')} is encrypted "
                f"with KMS key {facts.get('kms_key_id')}, which is not enabled (disabled, "
                "pending deletion or missing): the instance would not start again")
    return None


def _kms_access(facts: Facts, verdict: str) -> kms_access.KeyAccess | None:
    access = kms_access.KeyAccess.from_fact(facts.get("kms_key_access"))
    return access if access is not None and access.verdict == verdict else None


def _kms_key_denied(facts: Facts, _rescue: str | None) -> str | None:
    access = _kms_access(facts, "denied")
    if access is None:
        return None
    return kms_access.refusal(str(facts.get("root_volume_id")), str(facts.get("id")),
                              str(facts.get("region")), access)


def _kms_key_unchecked(facts: Facts, _rescue: str | None) -> str | None:
    access = _kms_access(facts, "unchecked")
    return None if access is None else kms_access.warning(access)


def _marketplace(facts: Facts, _rescue: str | None) -> str | None:
    codes = list(facts.get("product_codes") or [])
    if codes:
        return (f"{facts.get('id')} carries Marketplace product code(s) {', '.join(codes)}: "
                f"its root volume {facts.get('root_volume_id')} may not attach to another "
                "instance")
    return None


def _rescue_image(facts: Facts, rescue_image_id: str | None) -> str | None:
    state = facts.get("rescue_image_state")
    if rescue_image_id is None or state in (None, "available"):
        return None
    region = str(facts.get("region"))
    if str(state).startswith(UNRESOLVED):
        problem = unresolved(rescue_image_id, region, str(state).removeprefix(UNRESOLVED))
    else:
        found = "does not exist" if state == "not found" else f"is {state}"
        problem = (f"rescue image {shown(facts.get('rescue_image_id'), rescue_image_id)} "
                   f"{found} in {region}")
    return f"{problem}: no rescue instance for {facts.get('id')}"


def _rescue_ssm(facts: Facts) -> manageability.Manageability | None:
    return manageability.Manageability.from_fact(facts.get("rescue_ssm"))


def _rescue_unmanageable(facts: Facts, _rescue: str | None) -> str | None:
    found = _rescue_ssm(facts)
    if found is None or found.managed is not False:
        return None
    where = str(facts.get("account")), str(facts.get("region"))
    return (f"{manageability.refusal(*where, found)}: no rescue instance could repair "
            f"{facts.get('id')}")


def _rescue_ssm_unchecked(facts: Facts, _rescue: str | None) -> str | None:
    found = _rescue_ssm(facts)
    if found is None or found.managed is not None:
        return None
    return manageability.warning(str(facts.get("account")), str(facts.get("region")), found)


def _hibernation(facts: Facts, _rescue: str | None) -> str | None:
    if facts.get("hibernation"):
        return f"{facts.get('id')} has hibernation configured"
    return None


def _same_ami_rescue(facts: Facts, rescue_image_id: str | None) -> str | None:
    """Against the AMI the rescue image resolved to in the target's Region (fact
    rescue_image_id), else as the playbook names it."""
    image_id = facts.get("rescue_image_id") or rescue_image_id
    if rescue_image_id is None or image_id != facts.get("image_id"):
        return None
    via = f" ({rescue_image_id})" if image_id != rescue_image_id else ""
    return (f"{facts.get('id')} runs {image_id}, the same AMI the rescue instance would "
            f"run{via}: the disks' signatures collide")


def _public_ip(facts: Facts, _rescue: str | None) -> str | None:
    if facts.get("public_ip") and facts.get("has_elastic_ip") is False:
        return (f"{facts.get('id')}'s public IPv4 address {facts.get('public_ip')} is not an "
                "Elastic IP: it changes when the instance stops and starts")
    return None


def _not_windows(facts: Facts, _rescue: str | None) -> str | None:
    platform = facts.get("platform")
    if platform != "windows":
        return f"{facts.get('id')} runs {platform or 'an unknown platform'}, not Windows"
    return None


def _already_healthy(facts: Facts, _rescue: str | None) -> str | None:
    if facts.get("status") == "ok":
        return f"{facts.get('id')} passes its status checks already"
    return None


def _workspace_available(facts: Facts, _rescue: str | None) -> str | None:
    """AVAILABLE: "The WorkSpace is running and has passed the health checks" (WorkSpaces
    API reference, Workspace.State). A reboot would only drop its user's session."""
    if facts.get("state") == "AVAILABLE":
        return f"{facts.get('id')} is AVAILABLE: it passes WorkSpaces' health checks already"
    return None


# Finding kind -> rule, per target kind; the order is the order findings are reported.
RULES: Mapping[str, Mapping[str, Rule]] = {
    "ec2-instance": {
        "spot-one-time": _spot_one_time,
        "stop-protection": _stop_protection,
        "kms-key-unusable": _kms_key_unusable,
        "kms-key-denied": _kms_key_denied,
        "kms-key-unchecked": _kms_key_unchecked,
        "marketplace-product-code": _marketplace,
        "rescue-image-unusable": _rescue_image,
        "rescue-unmanageable": _rescue_unmanageable,
        "rescue-ssm-unchecked": _rescue_ssm_unchecked,
        "instance-store-data-loss": _instance_store,
        "spot-persistent": _spot_persistent,
        "same-ami-rescue": _same_ami_rescue,
        "hibernation-enabled": _hibernation,
        "public-ip-will-change": _public_ip,
        "not-windows": _not_windows,
        "already-healthy": _already_healthy,
    },
    "workspace": {
        "already-healthy": _workspace_available,
    },
}


def findings_for(kind: str, facts: Facts, rescue_image_id: str | None = None) -> list[Finding]:
    """Every finding the target's facts show (for ``kind``'s rules)."""
    found = []
    for finding_kind, rule in RULES.get(kind, {}).items():
        detail = rule(facts, rescue_image_id)
        if detail is not None:
            found.append(Finding(finding_kind, detail))
    return found


def destructive_findings(kinds: Iterable[str], facts: Facts) -> list[Finding]:
    """Findings for the data-destroying actions a playbook uses on this target.

    These follow from the playbook, not the facts (replacing a root volume loses
    data on any instance), so the executor adds them to ``findings_for``'s result;
    ``gate`` then asks for their acknowledgement like any other ``ack`` finding.
    """
    target = facts.get("id", "the target")
    return [Finding(kind, f"{target}: {FINDINGS[kind].summary}") for kind in kinds]


def gate(findings: Iterable[Finding], relevant_kinds: set[str], accepted: set[str],
         require_ack: set[str]) -> str | None:
    """Why the target is refused, or None if it may go on.

    Only findings among ``relevant_kinds`` (the risks of the playbook's actions)
    count. A ``block`` finding refuses the target whatever was accepted. An
    ``ack`` finding, or any finding whose kind the playbook lists in
    ``require_ack``, refuses it unless its kind is in ``accepted``.
    """
    blocked: list[str] = []
    unaccepted: list[str] = []
    for finding in findings:
        if finding.kind not in relevant_kinds:
            continue
        info = FINDINGS[finding.kind]
        if info.severity == "block":
            hint = f" (hint: {info.hint})" if info.hint else ""
            blocked.append(f"{finding.kind}: {finding.detail}{hint}")
        elif (info.severity == "ack" or finding.kind in require_ack) and (
                finding.kind not in accepted):
            unaccepted.append(f"{finding.kind} not accepted (--accept {finding.kind}): "
                              f"{finding.detail}")
    reasons = [f"blocked by {reason}" for reason in blocked] + unaccepted
    return "; ".join(reasons) if reasons else None
