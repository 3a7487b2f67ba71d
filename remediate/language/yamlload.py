"""Parse YAML into plain data, remembering where every key and value was written.

``yaml.safe_load`` semantics (no tags that build objects), plus what a playbook
loader needs and PyYAML does not give: duplicate keys are errors, files are size
capped, alias expansion is capped (a "billion laughs" document fails fast),
nesting is capped (PyYAML's composer and everything after it recurse, and
Python's recursion limit is no error message), integers longer than Python
converts are refused, one document per file, and every problem carries a line
and column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from remediate.language.problems import Path

MAX_BYTES = 1024 * 1024
MAX_NODES = 100_000
# Mappings and lists inside each other. A playbook needs about 10 (a `when` of all/any/not
# a few deep); the checks after loading recurse once per level, far below Python's limit.
MAX_DEPTH = 64
_DEPTH_HINT = ("playbooks are shallow: a `when` needs a few levels of all/any/not; is this "
               "file generated? flatten it")
_PLAIN_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    col: int  # 1-based


@dataclass
class Positions:
    """Where each path's value (and, for mapping entries, its key) starts."""

    values: dict[Path, Mark] = field(default_factory=dict)
    keys: dict[Path, Mark] = field(default_factory=dict)

    def find(self, path: Path, at_key: bool = False) -> Mark:
        """The position of ``path``, or of its nearest ancestor that was written."""
        table = self.keys if at_key else self.values
        probe = path
        while probe:
            if probe in table:
                return table[probe]
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return self.values.get((), Mark(1, 1))


class YamlProblem(Exception):
    def __init__(self, message: str, mark: Mark, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark
        self.hint = hint


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self) -> None:
        self.positions = Positions()
        self.count = 0
        self._scalars = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: Path) -> Any:
        if len(path) > MAX_DEPTH:
            raise YamlProblem(f"values are nested more than {MAX_DEPTH} levels deep",
                              _mark(node), _DEPTH_HINT)
        self.count += 1
        if self.count > MAX_NODES:
            raise YamlProblem(
                f"the document expands to more than {MAX_NODES:,} values",
                _mark(node),
                "anchors and aliases (&a / *a) are expanded; a few aliases of aliases can "
                "blow up (an alias bomb): write the values out",
            )
        self.positions.values.setdefault(path, _mark(node))
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_TAGS:
            raise YamlProblem(f"cannot read this value: unsupported tag {node.tag!r}",
                              _mark(node), "playbooks are plain YAML: no !!python or other tags")
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        try:
            return self._scalars.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise YamlProblem(f"cannot read this value: {_reason(exc)}", _mark(node),
                              "playbooks are plain YAML: no !!python or other tags") from None
        except ValueError:  # int(): Python converts at most 4,300 digits
            raise YamlProblem(f"cannot read this value: a number of {len(node.value):,} "
                              "characters", _mark(node),
                              "no setting takes a number this long; quote it if it is "
                              "text") from None

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        self._scalars.flatten_mapping(node)  # YAML merge keys (<<)
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlProblem("expected a plain key, found a mapping or list used as a key",
                                  _mark(key_node))
            key = self._scalars.construct_object(key_node)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise YamlProblem(f"expected a plain key, found {key!r}", _mark(key_node))
            key_text = key if isinstance(key, str) else str(key)
            if key_text in out:
                first = self.positions.keys[(*path, key_text)]
                raise YamlProblem(
                    f"duplicate key {key_text!r} (first written at line {first.line})",
                    _mark(key_node),
                    "YAML keeps only the last one; remove or rename one of them",
                )
            self.positions.keys[(*path, key_text)] = _mark(key_node)
            out[key_text] = self.build(value_node, (*path, key_text))
        return out


def _reason(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc)
    return str(problem)


def _compose(text: str) -> list[yaml.Node]:
    """Compose with libyaml when present (10x faster); on an error, compose again with
    the pure-Python parser, whose messages are the ones users and tests see."""
    fast = getattr(yaml, "CSafeLoader", None)
    try:
        if fast is not None:
            try:
                return list(yaml.compose_all(text, Loader=fast))
            except yaml.YAMLError:
                pass
        return list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except RecursionError:  # both composers recurse once per level
        raise _too_deep(text) from None


def _too_deep(text: str) -> YamlProblem:
    """Where ``text`` nests deeper than :data:`MAX_DEPTH`, found with the parser's events
    (a loop, where composing recurses)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):  # libyaml stops at 1,000 levels
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            mark = event.start_mark
            if depth > MAX_DEPTH + 1 and mark is not None:  # the top mapping is level 0
                return YamlProblem(f"values are nested more than {MAX_DEPTH} levels deep",
                                   Mark(mark.line + 1, mark.column + 1), _DEPTH_HINT)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    raise AssertionError("composing recursed too deep in a shallow document")


def check_size(size: int) -> None:
    if size > MAX_BYTES:
        raise YamlProblem(f"the file is {size:,} bytes; playbooks may be at most "
                          f"{MAX_BYTES:,} bytes", Mark(1, 1),
                          "is this the right file? playbooks are short YAML documents")


def parse(text: str | bytes) -> tuple[Mapping[str, Any], Positions]:
    """One YAML mapping and its positions, or :class:`YamlProblem`."""
    check_size(len(text))
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise YamlProblem(f"the file is not UTF-8 text (byte {exc.start})", Mark(1, 1)) \
                from None
    try:
        documents = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
        reason = _reason(exc)
        hint = ""
        if "\\t" in reason or "'\\t'" in str(exc):
            reason = "found a tab character"
            hint = "YAML indents with spaces only: replace tabs with spaces"
        raise YamlProblem(f"invalid YAML: {reason}", where, hint) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(f"invalid YAML: {_reason(exc)}", Mark(1, 1)) from None
    documents = [doc for doc in documents if doc is not None]
    if not documents:
        raise YamlProblem("the file is empty: expected a playbook (a YAML mapping)", Mark(1, 1),
                          "start with: version: 1")
    if len(documents) > 1:
        raise YamlProblem("expected one YAML document, found "
                          f"{len(documents)} (separated by ---)", _mark(documents[1]),
                          "put each playbook in its own file")
    root = documents[0]
    builder = _Builder()
    data = builder.build(root, ())
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"{data!r}"
        raise YamlProblem(f"expected a playbook (a YAML mapping of keys), found {kind}",
                          _mark(root), "start with: version: 1")
    return data, builder.positions
