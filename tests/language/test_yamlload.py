from __future__ import annotations

import pytest

from remediate.language.yamlload import MAX_BYTES, Mark, YamlProblem, parse


def problem(text: str | bytes) -> YamlProblem:
    with pytest.raises(YamlProblem) as info:
        parse(text)
    return info.value


def test_positions_of_keys_and_values() -> None:
    data, positions = parse("version: 1\nsteps:\n  - id: a\n    action: ec2.stop\n")
    assert data == {"version": 1, "steps": [{"id": "a", "action": "ec2.stop"}]}
    assert positions.values[("steps", 0, "action")] == Mark(4, 13)
    assert positions.keys[("steps", 0, "action")] == Mark(4, 5)
    # An unknown path falls back to its nearest written ancestor.
    assert positions.find(("steps", 0, "nope")) == Mark(3, 5)


def test_tabs() -> None:
    p = problem("version: 1\n\tname: x\n")
    assert (p.message, p.mark, p.hint) == (
        "invalid YAML: found a tab character", Mark(2, 1),
        "YAML indents with spaces only: replace tabs with spaces")


def test_duplicate_keys() -> None:
    p = problem("name: a\nversion: 1\nname: b\n")
    assert p.message == "duplicate key 'name' (first written at line 1)"
    assert p.mark == Mark(3, 1)


def test_duplicate_nested_keys() -> None:
    p = problem("steps:\n  - id: a\n    id: b\n")
    assert p.message == "duplicate key 'id' (first written at line 2)"


def test_not_a_mapping() -> None:
    assert problem("- a\n- b\n").message == (
        "expected a playbook (a YAML mapping of keys), found a list")
    assert problem("just text\n").message == (
        "expected a playbook (a YAML mapping of keys), found 'just text'")


def test_empty() -> None:
    assert problem("").message == "the file is empty: expected a playbook (a YAML mapping)"
    assert problem("# only a comment\n").message.startswith("the file is empty")


def test_two_documents() -> None:
    p = problem("a: 1\n---\nb: 2\n")
    assert p.message == "expected one YAML document, found 2 (separated by ---)"
    assert p.mark.line == 3


def test_too_big() -> None:
    p = problem("a: " + "x" * MAX_BYTES)
    assert p.message == f"the file is {MAX_BYTES + 3:,} bytes; playbooks may be at most " \
                        f"{MAX_BYTES:,} bytes"


def test_alias_bomb_fails_fast() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    previous = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
        previous = name
    p = problem("\n".join(lines))
    assert p.message == "the document expands to more than 100,000 values"
    assert "alias bomb" in p.hint


def test_python_tags_are_refused() -> None:
    p = problem("a: !!python/object/apply:os.system ['true']\n")
    assert p.message == ("cannot read this value: unsupported tag "
                         "'tag:yaml.org,2002:python/object/apply:os.system'")


def test_python_scalar_tag_is_refused() -> None:
    p = problem("a: !!python/name:os.system x\n")
    assert p.message.startswith("cannot read this value: could not determine a constructor")


def test_merge_keys_and_aliases_work() -> None:
    data, _ = parse("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n")
    assert data["other"] == {"x": 1, "y": 2}


def test_not_utf8() -> None:
    assert problem(b"a: \xff\xfe\n").message == "the file is not UTF-8 text (byte 3)"


def test_unclosed_flow() -> None:
    p = problem("a: [1,\n")
    assert p.message == "invalid YAML: expected the node content, but found '<stream end>'"
