from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from remediate.language.jsonschema import playbook_schema

ROOT = Path(__file__).resolve().parents[2]
VALID = sorted((ROOT / "tests/language/corpus/valid").glob("*.yaml")) + sorted(
    (ROOT / "playbooks").glob("*.yaml"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = playbook_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_playbooks_match_the_schema(path: Path,
                                          validator: jsonschema.Draft202012Validator) -> None:
    assert [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))] == []


@pytest.mark.parametrize(("name", "change"), [
    ("unknown top-level key", {"step": []}),
    ("wrong version", {"version": 2}),
    ("unknown action", {"steps": [{"id": "a", "action": "ec2.stopp"}]}),
    ("unknown action parameter", {"steps": [{"id": "a", "action": "ec2.stop",
                                             "with": {"timout": 5}}]}),
    ("bad on_failure", {"steps": [{"id": "a", "action": "ec2.stop", "on_failure": "retry"}]}),
])
def test_schema_rejects(name: str, change: dict[str, object],
                        validator: jsonschema.Draft202012Validator) -> None:
    doc = yaml.safe_load((ROOT / "tests/language/corpus/valid/minimal.yaml").read_text())
    doc.update(change)
    assert list(validator.iter_errors(doc)), name


def test_action_parameters_come_from_the_registry() -> None:
    schema = playbook_schema()
    step = schema["properties"]["steps"]["items"]
    stop_rule = next(rule for rule in step["allOf"]
                     if rule["if"]["properties"]["action"]["const"] == "ec2.stop")
    assert set(stop_rule["then"]["properties"]["with"]["properties"]) == {
        "timeout", "force_after", "skip_os_shutdown", "hold_capacity"}
    assert "ec2.stop" in step["properties"]["action"]["enum"]
