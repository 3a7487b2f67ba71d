"""Schema nodes: the playbook language is declared with these, once.

Each node checks a value parsed from YAML (writing :class:`Problem`s with the
key path, what was expected and what was found), returns the value with defaults
applied, and renders itself as JSON Schema. The playbook's structure
(:mod:`remediate.language.spec`) and every action's parameters are made of them,
so `validate`, `run` and `remediate schema` cannot disagree.
"""

from __future__ import annotations

import difflib
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from remediate.language.durations import DURATION_RE, format_duration, parse_duration
from remediate.language.problems import Path, Problems
from remediate.language.template import has_template


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
INVALID: Final = object()
# Integers longer than this (about 60 digits) are described by their length, not printed.
_LONG_INT_BITS: Final = 200


def describe(value: Any) -> str:
    """How a found value reads in an error: its text and its YAML type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int):
        if value.bit_length() > _LONG_INT_BITS:  # Python refuses to print past 4,300 digits
            return f"an integer of {math.floor(math.log10(abs(value))) + 1:,} digits"
        return f"{value} (an integer)"
    if isinstance(value, float):
        return f"{value} (a number)"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"{shown!r} (a string)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


class Node(ABC):
    description: str = ""
    # Accept a ``${{ ... }}`` template in place of a value (checked once rendered, at run
    # time). Off in the playbook's own structure, on in action parameters.
    templated: bool = False

    def _is_template(self, value: Any) -> bool:
        return self.templated and isinstance(value, str) and has_template(value)

    @abstractmethod
    def expected(self) -> str:
        """What a valid value is, as a phrase: 'an integer from 1 to 10'."""

    @abstractmethod
    def json_schema(self) -> dict[str, Any]: ...

    @abstractmethod
    def check(self, value: Any, path: Path, problems: Problems) -> Any:
        """Return the checked value (defaults applied) or INVALID after adding problems."""

    def _schema(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.templated:
            body = {"anyOf": [body, {"type": "string", "pattern": r"\$\{\{"}]}
        if self.description:
            body = {"description": self.description, **body}
        return body

    def _wrong(self, value: Any, path: Path, problems: Problems, hint: str = "") -> Any:
        problems.add(path, f"expected {self.expected()}, found {describe(value)}", hint)
        return INVALID


@dataclass
class Str(Node):
    pattern: str | None = None
    pattern_name: str = ""
    min_len: int = 1
    max_len: int = 4096
    templated: bool = False
    description: str = ""

    def expected(self) -> str:
        return self.pattern_name or "a string"

    def json_schema(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "string", "minLength": self.min_len,
                                "maxLength": self.max_len}
        if self.pattern:
            body["pattern"] = self.pattern
        return self._schema(body)

    def check(self, value: Any, path: Path, problems: Problems) -> Any:
        if not isinstance(value, str):
            if isinstance(value, int | float) and not isinstance(value, bool):
                return self._wrong(value, path, problems, f'quote it: "{value}"')
            return self._wrong(value, path, problems)
        if self._is_template(value):
            return value
        if not self.min_len <= len(value) <= self.max_len:
            problems.add(path, f"expected {self.expected()} of {self.min_len} to "
                               f"{self.max_len} characters, found {len(value)} characters")
            return INVALID
        if self.pattern and not re.fullmatch(self.pattern, value):
            return self._wrong(value, path, problems)
        return value


class _Bounded(Node):
    """A number within optional bounds: integers (``Int``) or any number (``Number``)."""

    minimum: float | None
    maximum: float | None
    noun: str = "a number"
    json_type: str = "number"
    types: tuple[type, ...] = (int, float)

    def expected(self) -> str:
        if self.minimum is not None and self.maximum is not None:
            return f"{self.noun} from {self.minimum:g} to {self.maximum:g}"
        if self.minimum is not None:
            return f"{self.noun} of at least {self.minimum:g}"
        return self.noun

    def json_schema(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.json_type}
        if self.minimum is not None:
            body["minimum"] = self.minimum
        if self.maximum is not None:
            body["maximum"] = self.maximum
        return self._schema(body)

    def check(self, value: Any, path: Path, problems: Problems) -> Any:
        if self._is_template(value):
            return value
        if isinstance(value, bool) or not isinstance(value, self.types):
            hint = ""
            if isinstance(value, str) and value.strip().isdigit():
                hint = f"remove the quotes: {value.strip()}"
            return self._wrong(value, path, problems, hint)
        number = cast(float, value)
        if isinstance(number, float) and not math.isfinite(number):
            # .nan compares false with every bound, so it would pass them all.
            return self._wrong(value, path, problems, "write a finite number")
        if (self.minimum is not None and number < self.minimum) or (
            self.maximum is not None and number > self.maximum
        ):
            return self._wrong(value, path, problems)
        return value if self.json_type == "integer" else float(number)


@dataclass
class Int(_Bounded):
    minimum: int | None = None
    maximum: int | None = None
    templated: bool = False
    description: str = ""
    noun = "an integer"
    json_type = "integer"
    types = (int,)


@dataclass
class Number(_Bounded):
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""


@dataclass
class Bool(Node):
    templated: bool = False
    description: str = ""

    def expected(self) -> str:
        return "true or false"

    def json_schema(self) -> dict[str, Any]:
        return self._schema({"type": "boolean"})

    def check(self, value: Any, path: Path, problems: Problems) -> Any:
        if self._is_template(value):
            return value
        if not isinstance(value, bool):
            hint = ""
            if isinstance(value, str) and value.lower() in {"yes", "no", "true", "false"}:
                hint = "write true or false, without quotes"
            return self._wrong(value, path, problems, hint)
        return value


@dataclass
class Choice(Node):
    values: tuple[str, ...] = ()
    description: str = ""
    # What the values are, for long lists: "a rate bucket name".
    name: str = ""

    def expected(self) -> str:
        return self.name or "one of " + ", ".join(repr(v) for v in self.values)

    def json_schema(self) -> dict[str, Any]:
        return self._schema({"enum": list(self.values)})

    def check(self, value: Any, path: Path, problems: Problems) -> Any:
        if self._is_template(value):
            return value
        if value in self.values and isinstance(value, type(self.values[0])):
            return value
        hint = did_you_mean(value, self.values) if isinstance(value, str) else ""
        if not hint and self.name:
            hint = "one of: " + ", ".join(self.values)
        return self._wrong(value, path, problems, hint)


@dataclass
class Const(Node):
    value: Any = None
    description: str = ""

    def expected(self) -> str:
        return repr(self.value)

    def json_schema(self) -> dict[str, Any]:
        return self._schema({"const": self.value})

    def check(self, value: Any, path: Path, problems: Problems) -> Any:
        if value == self.value and type(value) is type(self.value):
            return value
        return self._wrong(value, path, problems)


@dataclass
class Duration(Node):
    """Seconds: a number, or text like 90s, 5m, 1h30m, 250ms. Checked value is float seconds."""

    minimum: float = 0.0
    maximum: float = 7 * 24 * 3600.0
    description: str = ""

    def expected(self) -> str:
        return (f"a duration from {format_duration(self.minimum)} to "
                f"{format_duration(self.maximum)} (seconds, or text like 30s, 5m, 1h30m)")

    def json_schema(self) -> dict[str, Any]:
        return self._schema({"anyOf": [
            {"type": "number", "minimum": self.minimum, "maximum": self.maximum},
            {"type": "string", "pattern": DURATION_RE.pattern},
        ]})

    def check(self, value: Any, path: Path, problems: Problems) -> Any:
        if self._is_template(value):
            return value
        seconds: float | None
        if isinstance(value, bool):
            seconds = None
        elif isinstance(value, int | float):
            seconds = float(value) if _fits_float(value) else None
        elif isinstance(value, str):
            seconds = parse_duration(value)
        else:
            seconds = None
        if seconds is None or not self.minimum <= seconds <= self.maximum:
            return self._wrong(value, path, problems)
        return seconds


def _fits_float(value: float) -> bool:
    """Whether ``float(value)`` is a finite number (an integer of 400 digits is not)."""
    return (isinstance(value, float) and math.isfinite(value)) or (
        isinstance(value, int) and value.bit_length() <= 1000)


@dataclass
class Either(Node):
    """The first alternative that accepts the value wins."""

    options: tuple[Node, ...] = ()
    description: str = ""

    def expected(self) -> str:
        return " or ".join(option.expected() for option in self.options)

    def json_schema(self) -> dict[str, Any]:
        return self._schema({"anyOf": [option.json_schema() for option in self.options]})

    def check(self, value: Any, path: Path, problems: Problems) -> Any:
        for option in self.options:
            scratch = Problems()
            checked = option.check(value, path, scratch)
            if not scratch:
                return checked
        return self._wrong(value, path, problems)


@dataclass
class ListOf(Node):
    item: Node = None  # type: ignore[assignment]
    min_items: int = 0
    max_items: int = 10_000
    description: str = ""
    # A scalar where a list is expected becomes a one-item list.
    accept_scalar: bool = False

    def expected(self) -> str:
        return f"a list, each item {self.item.expected()}"

    def json_schema(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "array", "items": self.item.json_schema()}
        if self.min_items:
            body["minItems"] = self.min_items
        body["maxItems"] = self.max_items
        if self.accept_scalar:
            body = {"anyOf": [body, self.item.json_schema()]}
        return self._schema(body)

    def check(self, value: Any, path: Path, problems: Problems) -> Any:
        if self.accept_scalar and not isinstance(value, list | Mapping) and value is not None:
            value = [value]
        if not isinstance(value, list):
            return self._wrong(value, path, problems)
        if not self.min_items <= len(value) <= self.max_items:
            problems.add(path, f"expected {self.min_items} to {self.max_items} items, "
                               f"found {len(value)}")
            return INVALID
        out = [self.item.check(item, (*path, i), problems) for i, item in enumerate(value)]
        return INVALID if any(item is INVALID for item in out) else out


@dataclass
class MapOf(Node):
    value: Node = None  # type: ignore[assignment]
    key: Node = None  # type: ignore[assignment]
    max_items: int = 1000
    description: str = ""
    title: str = ""

    def expected(self) -> str:
        return self.title or f"a mapping of {self.key.expected()} to {self.value.expected()}"

    def json_schema(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "object", "additionalProperties": self.value.json_schema(),
                                "maxProperties": self.max_items,
                                "propertyNames": self.key.json_schema()}
        return self._schema(body)

    def check(self, value: Any, path: Path, problems: Problems) -> Any:
        if not isinstance(value, Mapping):
            return self._wrong(value, path, problems)
        if len(value) > self.max_items:
            problems.add(path, f"expected at most {self.max_items} entries, found {len(value)}")
            return INVALID
        out: dict[str, Any] = {}
        ok = True
        for key, item in value.items():
            scratch = Problems()
            self.key.check(key, (*path, str(key)), scratch)
            if scratch:
                hint = scratch.items[0].hint
                problems.add((*path, str(key)), f"expected a key that is "
                             f"{self.key.expected()}, found {describe(key)}", hint, at_key=True)
                ok = False
                continue
            checked = self.value.check(item, (*path, key), problems)
            ok = ok and checked is not INVALID
            out[key] = checked
        return out if ok else INVALID


@dataclass
class Field:
    node: Node
    required: bool = False
    default: Any = MISSING
    description: str = ""


@dataclass
class Record(Node):
    """A mapping with known keys. Unknown keys are errors, with a 'did you mean'."""

    fields: Mapping[str, Field] = None  # type: ignore[assignment]
    description: str = ""
    title: str = "a mapping"

    def expected(self) -> str:
        return self.title

    def json_schema(self) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        for name, f in self.fields.items():
            prop = f.node.json_schema()
            if f.description and "description" not in prop:
                prop = {"description": f.description, **prop}
            if f.default is not MISSING and f.default not in ({}, []):
                prop = {**prop, "default": f.default}
            properties[name] = prop
        body: dict[str, Any] = {"type": "object", "properties": properties,
                                "additionalProperties": False}
        required = [name for name, f in self.fields.items() if f.required]
        if required:
            body["required"] = required
        return self._schema(body)

    def check(self, value: Any, path: Path, problems: Problems) -> Any:
        if value is None and not any(f.required for f in self.fields.values()):
            value = {}
        if not isinstance(value, Mapping):
            return self._wrong(value, path, problems)
        out: dict[str, Any] = {}
        ok = True
        for key in value:
            if key not in self.fields:
                known = sorted(self.fields)
                hint = did_you_mean(str(key), known) or (
                    "valid keys: " + ", ".join(known) if known else "no keys are allowed here")
                problems.add((*path, str(key)), f"unknown key {str(key)!r}", hint, at_key=True)
                ok = False
        for name, f in self.fields.items():
            if name in value:
                checked = f.node.check(value[name], (*path, name), problems)
                ok = ok and checked is not INVALID
                out[name] = checked
            elif f.required:
                problems.add(path, f"missing required key {name!r}: expected "
                                   f"{f.node.expected()}", f.description)
                ok = False
            elif isinstance(f.default, dict | list):
                # Run container defaults through their node, so nested defaults apply too.
                out[name] = f.node.check(type(f.default)(f.default), (*path, name), problems)
            elif f.default is not MISSING:
                out[name] = f.default
        return out if ok else INVALID


@dataclass
class Anything(Node):
    """Any YAML value (checked later by someone who knows more, e.g. an action)."""

    description: str = ""

    def expected(self) -> str:
        return "any value"

    def json_schema(self) -> dict[str, Any]:
        return self._schema({})

    def check(self, value: Any, path: Path, problems: Problems) -> Any:
        return value


def allow_templates(node: Node) -> Node:
    """Let every scalar under ``node`` be a template (action parameters work this way)."""
    if isinstance(node, Record):
        for f in node.fields.values():
            allow_templates(f.node)
    elif isinstance(node, ListOf):
        allow_templates(node.item)
    elif isinstance(node, MapOf):
        allow_templates(node.value)
    elif isinstance(node, Either):
        for option in node.options:
            allow_templates(option)
    elif not isinstance(node, Anything | Const):
        node.templated = True
    return node
