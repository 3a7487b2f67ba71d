"""Reversible monkeypatching of moto's classes: every patch is undone on exit."""

from __future__ import annotations

from typing import Any

_MISSING = object()


class Patcher:
    """Set attributes on classes/modules, remembering the originals to restore."""

    def __init__(self) -> None:
        self._saved: list[tuple[object, str, object]] = []

    def set(self, owner: object, name: str, value: object) -> None:
        """Replace ``owner.name`` by ``value`` (``owner.__dict__`` only, not inherited)."""
        original = vars(owner).get(name, _MISSING) if hasattr(owner, "__dict__") else _MISSING
        self._saved.append((owner, name, original))
        setattr(owner, name, value)

    def original(self, owner: object, name: str) -> Any:
        """The attribute as it was before this patcher touched it (via the MRO)."""
        for patched_owner, patched_name, original in self._saved:
            if patched_owner is owner and patched_name == name:
                if original is _MISSING:
                    raise AttributeError(f"{owner!r} had no {name!r} before patching")
                return original
        return getattr(owner, name)

    def undo(self) -> None:
        """Restore everything, newest patch first."""
        while self._saved:
            owner, name, original = self._saved.pop()
            if original is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
