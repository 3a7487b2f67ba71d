"""Long journal values stored once, by hash, and referred to from the rows that carry them.

Two kinds of value made the journal grow by ~30 KB a target (issue 15): the repair script, sent
with every SendCommand (and echoed in its answer) and differing between targets only by
the variable lines set before it; and a merged call's answer (one StopInstances for 200
targets), written whole into each member's row. In the ``blobs`` table each is kept once:

- a list of strings (a script's lines) of :data:`LINES_MIN` characters or more becomes
  ``{"$head": [its first lines], "$tail": [HASH, SKIP]}``: its lines after the head are
  those of the stored list HASH from SKIP on. A script whose variable lines differ finds
  the stored script by the hash of its lines after up to :data:`HEAD_MAX` first lines;
- what the members of a merged call share in their parameters (a value of
  :data:`SHARED_MIN` characters or more: the tags of a CreateTags) becomes
  ``{"$blob": HASH}`` in each member's row;
- the answer to a merged call, of :data:`ANSWER_MIN` characters or more, becomes
  ``{"$blob": HASH}`` in each member's row (an answer to one target's call stays in its
  row: storing it apart would save nothing).

A blob is written in the transaction of the row that first refers to it, so a row never
refers to a blob a crash lost. Values without these markers (older journals) read as
they are.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from typing import Any, Final

LINES_MIN: Final = 512
ANSWER_MIN: Final = 512
SHARED_MIN: Final = 64
HEAD_MAX: Final = 8
"""Leading lines a script may add before the lines of one already stored (its variables)."""

Write = Callable[[str, tuple[Any, ...]], object]


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


class Blobs:
    """The journal's ``blobs`` table, with what this process stored or read of it."""

    def __init__(self, db: sqlite3.Connection, write: Write) -> None:
        self._db = db
        self._write = write
        self._stored: set[str] = set()
        self._lines: dict[str, str] = {}  # stored lists read back (few: one per script)
        # hash of a list's lines from some point on -> (stored list's hash, that point)
        self._tails: dict[str, tuple[str, int]] = {}

    # ---- writing -------------------------------------------------------------------

    def pack_shared(self, params: dict[str, Any]) -> dict[str, Any]:
        """A merged call's member's parameters: what the members share (a claim tag, a
        document), :data:`SHARED_MIN` characters or more, is stored once and referred to;
        the member's own ids stay in its row."""
        packed = self.pack(params)
        for key, value in packed.items():
            if isinstance(value, (dict, list)):
                text = _dumps(value)
                if len(text) >= SHARED_MIN:
                    packed[key] = {"$blob": self._store(text)}
        return packed

    def pack(self, value: Any) -> Any:
        """``value`` with its long string lists stored (see the module docstring)."""
        if isinstance(value, dict):
            return {key: self.pack(item) for key, item in value.items()}
        if isinstance(value, list):
            if _is_lines(value):
                return self._pack_lines(value)
            return [self.pack(item) for item in value]
        return value

    def answer(self, text: str) -> str:
        """The JSON text to journal for an answer: itself, or a reference to it stored."""
        if len(text) < ANSWER_MIN:
            return text
        return _dumps({"$blob": self._store(text)})

    def _pack_lines(self, lines: list[str]) -> dict[str, Any]:
        for head in range(min(HEAD_MAX, len(lines)) + 1):
            found = self._tails.get(_hash(_dumps(lines[head:])))
            if found is not None:
                return {"$head": lines[:head], "$tail": list(found)}
        stored = self._store(_dumps(lines))
        for skip in range(min(HEAD_MAX, len(lines)) + 1):
            self._tails.setdefault(_hash(_dumps(lines[skip:])), (stored, skip))
        return {"$head": [], "$tail": [stored, 0]}

    def _store(self, text: str) -> str:
        key = _hash(text)
        if key not in self._stored:
            self._write("INSERT OR IGNORE INTO blobs (hash, text) VALUES (?, ?)", (key, text))
            self._stored.add(key)
        return key

    # ---- reading -------------------------------------------------------------------

    def unpack(self, value: Any) -> Any:
        """``value`` as it was before :meth:`pack` or :meth:`answer`."""
        if isinstance(value, dict):
            if value.keys() == {"$blob"}:
                return self.unpack(json.loads(self._text(value["$blob"])))
            if value.keys() == {"$head", "$tail"}:
                stored, skip = value["$tail"]
                text = self._lines.get(stored)
                if text is None:
                    text = self._lines[stored] = self._text(stored)
                return [*value["$head"], *json.loads(text)[skip:]]
            return {key: self.unpack(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.unpack(item) for item in value]
        return value

    def _text(self, key: str) -> str:
        row = self._db.execute("SELECT text FROM blobs WHERE hash=?", (key,)).fetchone()
        if row is None:
            raise KeyError(f"the journal refers to a value it does not hold ({key})")
        return str(row[0])


def _is_lines(value: list[Any]) -> bool:
    return (len(value) > 1 and all(isinstance(item, str) for item in value)
            and sum(len(item) for item in value) >= LINES_MIN)
