from __future__ import annotations

import pytest

from remediate.language.quoting import UnsafeValue, powershell_quote, sh_quote


@pytest.mark.parametrize(("value", "quoted"), [
    ("vol-0123", "'vol-0123'"),
    ("it's", "'it''s'"),
    ("$(Remove-Item C:\\ -Recurse)", "'$(Remove-Item C:\\ -Recurse)'"),
    ("`whoami`", "'`whoami`'"),
    ("a\u2019b", "'a\u2019\u2019b'"),
])
def test_powershell(value: str, quoted: str) -> None:
    assert powershell_quote(value) == quoted


@pytest.mark.parametrize(("value", "quoted"), [
    ("vol-0123", "vol-0123"),
    ("it's", "'it'\"'\"'s'"),
    ("$(rm -rf /)", "'$(rm -rf /)'"),
])
def test_sh(value: str, quoted: str) -> None:
    assert sh_quote(value) == quoted


@pytest.mark.parametrize("quote", [powershell_quote, sh_quote])
@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b", "a\x1bb"])
def test_control_characters_are_refused(quote: object, value: str) -> None:
    with pytest.raises(UnsafeValue):
        quote(value)  # type: ignore[operator]
