"""KMS keys made without their key pair until one is used.

moto 5.2.5 generates a 2048-bit RSA private key for every key it creates, symmetric
ones included (``moto.kms.utils.generate_private_key``), though only the asymmetric
operations (Sign, Verify, GetPublicKey) ever use it. That is about 0.16 s of CPU per
key, a third of building a small sandbox fleet. Here the pair is made the first time
the key's ``private_key`` is used, so nothing moto answers changes.
"""

from __future__ import annotations

from typing import Any

import moto.kms.models as kms_models

from remediate.sandbox.patcher import Patcher


class DeferredKeyPair:
    """Stands for moto's private key of ``key_spec``: made on first use, then the same."""

    def __init__(self, make: Any, key_spec: str) -> None:
        self._make, self._key_spec = make, key_spec
        self._made: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._made is None:
            self._made = self._make(self._key_spec)
        return getattr(self._made, name)


def install(patcher: Patcher) -> None:
    make = patcher.original(kms_models, "generate_private_key")
    patcher.set(kms_models, "generate_private_key",
                lambda key_spec: DeferredKeyPair(make, key_spec))
