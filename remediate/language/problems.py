"""A problem found in a playbook, and how it is located and printed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

PathPart = str | int
Path = tuple[PathPart, ...]


def render_path(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(document)"


@dataclass(frozen=True)
class Problem:
    """What is wrong at ``path``: ``message`` says expected and found; ``hint`` how to fix."""

    path: Path
    message: str
    hint: str = ""
    # Point at the key of ``path`` (an unknown key) rather than at its value.
    at_key: bool = False


@dataclass(frozen=True)
class Located:
    """A problem pinned to a file position (1-based line and column)."""

    file: str
    line: int
    col: int
    path: str
    message: str
    hint: str = ""
    source_line: str = ""
    rule: str = "playbook"

    def text(self) -> str:
        head = f"{self.file}:{self.line}:{self.col}: "
        head += f"{self.path}: {self.message}" if self.path else self.message
        lines = [head]
        if self.source_line:
            lines.append(f"    {self.source_line}")
            lines.append("    " + " " * max(0, self.col - 1) + "^")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


@dataclass
class Problems:
    """An accumulator the schema nodes write into."""

    items: list[Problem] = field(default_factory=list)

    def add(self, path: Path, message: str, hint: str = "", at_key: bool = False) -> None:
        self.items.append(Problem(path, message, hint, at_key))

    def extend(self, problems: Sequence[Problem]) -> None:
        self.items.extend(problems)

    def __bool__(self) -> bool:
        return bool(self.items)

    def summary(self) -> str:
        """Every problem on one line: ``with.times: expected ...; with.timeout: ...``."""
        return "; ".join(f"{render_path(p.path)}: {p.message}" for p in self.items)

    def __len__(self) -> int:
        return len(self.items)
