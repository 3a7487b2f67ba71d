"""Playbooks on AWS Step Functions: compile to Amazon States Language, start, run on moto.

>>> definition = compile_playbook(playbook, params)          # doctest: +SKIP
>>> definition_size(definition)                              # doctest: +SKIP
DefinitionSize(bytes=98765, states=321)
>>> execution_input(playbook, targets, run_id)               # doctest: +SKIP
{'run_id': ..., 'batches': [[{'id': 'i-...', 'region': ..., 'account': ...}], ...]}
"""

from __future__ import annotations

from remediate.export.compiler import DefinitionSize, compile_playbook, definition_size
from remediate.export.errors import NotExportable
from remediate.export.policy import role_policy
from remediate.export.run_input import execution_input, execution_name

__all__ = [
    "DefinitionSize",
    "NotExportable",
    "compile_playbook",
    "definition_size",
    "execution_input",
    "execution_name",
    "role_policy",
]
