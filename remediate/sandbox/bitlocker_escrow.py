"""What the repair script does on the rescue instance with a BitLocker-locked volume.

The script (playbooks/scripts/crowdstrike-offline-repair.ps1) gets ``$BitLockerKeys``,
where the recovery key is kept (``ssm:NAME``: a Parameter Store parameter, decrypted;
``secretsmanager:ID``: a secret's string), and ``$KeyRegion``; it reads the key there
with the rescue instance's credentials and unlocks the volume with it. Here the key is
read from moto's backends of the rescue instance's account and that Region, and must be
the volume's recovery password (:class:`~remediate.sandbox.state.RecoveryKey`); the exit
codes and messages are the script's.

Not modelled (a gap, said in the README): whether the rescue instance's profile may read
the parameter or secret and decrypt it; the sandbox reads it whatever the profile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from moto.core.exceptions import JsonRESTError
from moto.secretsmanager.models import secretsmanager_backends
from moto.ssm.models import ssm_backends

from remediate.sandbox.state import RecoveryKey

NO_ESCROW: Final = 7
NO_KEY: Final = 11
WRONG_KEY: Final = 12


@dataclass(frozen=True)
class Refusal:
    code: int
    message: str


def _variable(script: str, name: str) -> str | None:
    """The value the script's preamble sets ``name`` to (PowerShell or sh quoting)."""
    found = re.search(rf"^\$?{name}\s*=\s*'([^']*)'", script, re.MULTILINE)
    return found.group(1) if found else None


def reference(script: str) -> str | None:
    return _variable(script, "BitLockerKeys")


def unlock(instance: Any, script: str, key: RecoveryKey) -> Refusal | None:
    """Why the script cannot unlock the volume ``key`` locks (None: it unlocks it)."""
    where, region = reference(script), _variable(script, "KeyRegion")
    locked = f"BitLocker-locked (recovery key ID {key.key_id})"
    if not where:
        return Refusal(NO_ESCROW, f"{locked} and no key escrow named: set the repair step's "
                                  "bitlocker_keys (e.g. --param bitlocker_keys="
                                  "ssm:/bitlocker/{volume_id}), or unlock it by hand "
                                  "(manage-bde -unlock <letter>: -RecoveryPassword <key>) "
                                  "and repair again")
    region = region or instance.region_name
    found = _read(instance.ec2_backend.account_id, region, where)
    if found is None:
        return Refusal(NO_KEY, f"{locked}: no recovery key readable at {where} in {region} "
                               f"({_missing(where)}): store it there, or give the rescue "
                               "instance profile access to it")
    if found.strip() != key.password:
        return Refusal(WRONG_KEY, f"{locked}: the key at {where} does not unlock it: store "
                                  "the recovery password of that key ID there")
    return None


def _missing(where: str) -> str:
    return ("ParameterNotFound" if where.startswith("ssm:") else "ResourceNotFoundException")


def _read(account: str, region: str, where: str) -> str | None:
    """The key kept at ``where``, as the instance would read it (None: nothing there)."""
    scheme, _, name = where.partition(":")
    if scheme == "ssm":
        parameter = ssm_backends[account][region].get_parameter(name)
        if parameter is None:
            return None
        value: str | None = parameter.value
        return parameter.decrypt(parameter.value) if parameter.parameter_type == "SecureString" \
            else value
    try:
        secret = secretsmanager_backends[account][region].get_secret_value(name, "", "")
    except JsonRESTError:  # not found, deleted, no value: nothing the instance could read
        return None
    value = secret.get("SecretString")
    return value if isinstance(value, str) else None
