"""Every target has a BitLocker recovery key where the offline repair will look for it.

With ``bitlocker_keys`` set (the offline repair's parameter, see
:mod:`remediate.actions.bitlocker_keys`), a BitLocker-locked root is unlocked on the
rescue instance with the key kept at that name; a target without one ends "needs a
human" in the middle of an incident. AWS cannot tell which roots are BitLocker-locked
(that is inside the guest), so every target is judged: its key is there (Parameter
Store: DescribeParameters by name, 50 a call; Secrets Manager: ListSecrets), and a
Parameter Store one is a SecureString (a String shows the key to anyone who may read
parameters). Only names and types are read, never a key. Without ``bitlocker_keys``
the rule is not judged (not reported).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from remediate.actions.bitlocker_keys import name_of
from remediate.readiness.check import Check, Settings, Verdict
from remediate.readiness.model import Rule
from remediate.readiness.region import Region, chunks

ESCROWED = Rule("bitlocker-key-escrowed", "A BitLocker recovery key is kept for the root",
                "A BitLocker-locked root is unlocked on the rescue instance with the key "
                "kept where bitlocker_keys names it; without one the target needs a human.")
# DescribeParameters' ParameterFilters: at most 50 values a filter
# (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_ParameterStringFilter.html).
NAMES_PER_CALL: Final = 50


def _parameter_types(region: Region, names: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for chunk in chunks(sorted(set(names)), NAMES_PER_CALL):
        for page in region.pages("ssm", "DescribeParameters", ParameterFilters=[
                {"Key": "Name", "Option": "Equals", "Values": chunk}]):
            found.update({p["Name"]: p.get("Type", "") for p in page.get("Parameters", [])})
    return found


def _secrets(region: Region) -> set[str]:
    return {s["Name"] for page in region.pages("secretsmanager", "ListSecrets")
            for s in page.get("SecretList", [])}


def run(region: Region, settings: Settings) -> Iterator[Verdict]:
    reference = settings.bitlocker_keys
    if not reference:  # no escrow named: not a rule of this run
        return
    wanted = {i.id: name_of(reference, i.id, i.root_volume_id)
              for i in region.instances if i.root_volume_id}
    scheme = reference.partition(":")[0]
    kept = (_parameter_types(region, [name for _, name in wanted.values()])
            if scheme == "ssm" else dict.fromkeys(_secrets(region), "secret"))
    where = f"--region {region.scope.region}"
    failures = []
    for instance_id, (_, name) in wanted.items():
        kind = kept.get(name)
        if kind is None:
            put = (f"aws ssm put-parameter --type SecureString --name {name} --value KEY "
                   f"{where}" if scheme == "ssm" else
                   f"aws secretsmanager create-secret --name {name} --secret-string KEY "
                   f"{where}")
            failures.append(region.fail(
                ESCROWED, instance_id, f"no recovery key kept at {scheme}:{name} for "
                                       f"{instance_id}",
                "if its root is BitLocker-protected, escrow its recovery password (on the "
                "instance: manage-bde -protectors -get C: -Type RecoveryPassword) with "
                f"{put}"))
        elif scheme == "ssm" and kind != "SecureString":
            failures.append(region.fail(
                ESCROWED, instance_id, f"the recovery key at ssm:{name} for {instance_id} "
                                       f"is a {kind} parameter, readable in clear",
                f"store it again as a SecureString (aws ssm put-parameter --overwrite --type "
                f"SecureString --name {name} --value KEY {where})"))
    yield Verdict(ESCROWED, len(wanted), failures)


CHECK = Check((ESCROWED,), run)
