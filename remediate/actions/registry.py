"""The registry of actions by name. Importing it loads every action module.

Action modules import nothing from boto3, so ``remediate validate`` can load the
whole registry without it.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from typing import TypeVar

from remediate.actions.contract import Action
from remediate.language.schema import allow_templates

A = TypeVar("A", bound=type[Action])

_ACTIONS: dict[str, Action] = {}

# Every module that registers actions. Order is the order `list-actions` shows.
ACTION_MODULES = (
    "remediate.actions.ec2_inspect",
    "remediate.actions.ec2_power",
    "remediate.actions.ec2_volumes",
    "remediate.actions.ec2_backup",
    "remediate.actions.ec2_replace_root",
    "remediate.actions.rescue",
    "remediate.actions.rescue_prepare",
    "remediate.actions.ssm",
    "remediate.actions.guest_check",
    "remediate.actions.workspaces",
    "remediate.actions.control",
)
_loaded = False
# Reentrant: importing an action module registers through this module again.
_loading = threading.RLock()


def register(cls: A) -> A:
    name = cls.name
    if name in _ACTIONS and type(_ACTIONS[name]) is not cls:
        raise ValueError(f"action {name!r} registered twice")
    allow_templates(cls.params)
    _ACTIONS[name] = cls()
    return cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    with _loading:  # threads of one run may look up actions at once
        if _loaded:
            return
        for module in ACTION_MODULES:
            importlib.import_module(module)  # a module listed and missing is a packaging bug
        _loaded = True


def get(name: str) -> Action | None:
    _load()
    return _ACTIONS.get(name)


def names() -> list[str]:
    _load()
    return sorted(_ACTIONS)


def actions() -> Iterator[Action]:
    _load()
    for name in sorted(_ACTIONS):
        yield _ACTIONS[name]
