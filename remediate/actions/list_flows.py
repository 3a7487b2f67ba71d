"""Program pieces for lists in AWS's records: go through one, find an item, read a tag,
turn tags into a mapping, join values into text (:mod:`remediate.actions.program`).

A program has no comprehension: a list is gone through with a :class:`Loop` and
:class:`Item`, first item first. Step Functions has no filter that compares with a
value read at run time (the root device name, the run's id) and fails on
``ArrayGetItem`` past a list's end, so each round reads below the list's
:class:`Count`, kept as a countdown. Names of the vars a piece keeps start with the
name it is given, so two pieces of one program never share one.
"""

from __future__ import annotations

from collections.abc import Callable

from remediate.actions.program import (
    All,
    AtLeast,
    Count,
    Eq,
    Exists,
    Expr,
    Fmt,
    If,
    Item,
    Loop,
    Not,
    Plus,
    Pred,
    Put,
    Seq,
    Set,
    Var,
)


def each(name: str, items: Var, body: Callable[[Var], Seq], *,
         until: Pred | None = None) -> Seq:
    """``body(item)`` for each item of the list at ``items`` (absent: none), first to
    last; with ``until``, no further round once it holds."""
    listed, left, index = (Var(f"vars.{name}_{part}") for part in ("list", "left", "at"))
    go: Pred = AtLeast(left, 1) if until is None else All(AtLeast(left, 1), Not(until))
    return (Set(f"{name}_list", items),
            Set(f"{name}_left", 0),
            If(((Exists(listed), (Set(f"{name}_left", Count(listed)),)),)),
            Set(f"{name}_at", 0),
            Loop(go, (Set(f"{name}_item", Item(listed, index)),
                      Set(f"{name}_at", Plus(index)),
                      Set(f"{name}_left", Plus(left, -1)),
                      *body(Var(f"vars.{name}_item")))))


def first(into: str, items: Var, where: Callable[[Var], Pred]) -> Seq:
    """``vars.<into>``: the first item of ``items`` for which ``where(item)`` holds, or
    None."""
    found = Var(f"vars.{into}")
    return (Set(into, None),
            *each(into, items, lambda item: (If(((where(item), (Set(into, item),)),)),),
                  until=Exists(found)))


def tag(into: str, record: Var, key: str) -> Seq:
    """``vars.<into>``: the value of the tag ``key`` in ``record``'s Tags, or None."""
    return (*first(f"{into}_tag", record.Tags, lambda item: Eq(item.Key, key)),
            Set(into, Var(f"vars.{into}_tag").Value))


def tag_mapping(into: str, record: Var) -> Seq:
    """``vars.<into>``: ``record``'s Tags as a mapping of key to value."""
    mapping = Var(f"vars.{into}")
    return (Set(into, {}),
            *each(into, record.Tags,
                  lambda item: (Set(into, Put(mapping, item.Key, item.Value)),)))


def joined(into: str, items: Var, part: Callable[[Var], Expr], sep: str = ", ") -> Seq:
    """``vars.<into>``: ``part(item)`` of each item, in the list's order, joined by
    ``sep`` ("" for none)."""
    text = Var(f"vars.{into}")
    return (Set(into, ""),
            *each(into, items, lambda item: (
                If(((Eq(text, ""), (Set(into, Fmt(part(item))),)),),
                   orelse=(Set(into, Fmt(text, sep, part(item))),)),)))
