from __future__ import annotations

import pytest

from remediate.language.template import TemplateError, references, render, substitute


def test_references() -> None:
    assert references("${{ params.x }}-${{target.id}}") == ["params.x", "target.id"]


@pytest.mark.parametrize(("text", "message"), [
    ("${{ params.x + 1 }}", "expected a dotted path like params.name inside ${{ }}, "
                            "found 'params.x + 1'"),
    ("${{ __import__('os') }}", "expected a dotted path like params.name inside ${{ }}, "
                                "found \"__import__('os')\""),
    ("${{ env.HOME }}", "unknown namespace 'env' in ${{ env.HOME }}; expected one of params, "
                       "target, steps, run"),
    ("${{ params.x", "unclosed ${{: expected ${{ path }}"),
])
def test_bad_templates(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        references(text)
    assert str(info.value) == message


def test_render_keeps_types_for_whole_values() -> None:
    scope = {"params": {"n": 3, "ids": ["a"]}, "target": {"id": "i-1"}}
    assert render("${{ params.n }}", scope) == 3
    assert render({"x": ["${{ params.ids }}"]}, scope) == {"x": [["a"]]}
    assert render("host-${{ target.id }}-${{ params.n }}", scope) == "host-i-1-3"


def test_a_string_starting_and_ending_with_a_template_is_text_not_one_template() -> None:
    """``${{ a }} on ${{ b }}`` once read as one template (``a }} on ${{ b``), which has no
    value: the step failed on every target."""
    scope = {"params": {"note": "fine"}, "target": {"id": "i-1"}}
    assert render("${{ params.note }} on ${{ target.id }}", scope) == "fine on i-1"
    assert substitute("${{ params.note }} on ${{ target.id }}", {"params.note": "fine"}) == (
        "fine on ${{ target.id }}")


def test_render_missing_value() -> None:
    with pytest.raises(TemplateError) as info:
        render("${{ steps.a.outputs.x }}", {"steps": {"a": {"outputs": {}}}})
    assert str(info.value) == "${{ steps.a.outputs.x }} has no value ('x' is not set)"


def test_render_does_not_reach_into_objects() -> None:
    class Secret:
        token = "s3cr3t"

    with pytest.raises(TemplateError):
        render("${{ params.obj.token }}", {"params": {"obj": Secret()}})
