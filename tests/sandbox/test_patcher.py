from __future__ import annotations

from remediate.sandbox.patcher import Patcher


class Base:
    def name(self) -> str:
        return "base"


class Child(Base):
    pass


def test_undo_restores_own_and_inherited_attributes() -> None:
    patcher = Patcher()
    patcher.set(Child, "name", lambda self: "patched")
    patcher.set(Base, "extra", 1)
    assert Child().name() == "patched"
    assert patcher.original(Base, "name")(Child()) == "base"
    patcher.undo()
    assert Child().name() == "base"
    assert "name" not in vars(Child)
    assert not hasattr(Base, "extra")
