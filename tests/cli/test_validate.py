from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from click.testing import CliRunner

from remediate.cli.main import cli, main

ROOT = Path(__file__).resolve().parents[2]
BAD = "tests/language/corpus/invalid/12-unknown-action.yaml"
GOOD = "tests/language/corpus/valid/minimal.yaml"


@pytest.fixture(autouse=True)
def at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_valid_folder_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "playbooks/"]) == 0
    assert capsys.readouterr().out == "4 playbooks valid\n"


def test_invalid_exits_1_with_the_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", GOOD, BAD]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{BAD}:9:13: steps[0].action: unknown action 'ec2.stopp'\n")
    assert out.endswith("2 playbooks checked: 1 valid, 1 invalid (1 problem)\n")


def test_missing_file_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "nope.yaml"]) == 1
    assert capsys.readouterr().out == ("nope.yaml:1:1: no such file or folder\n"
                                       "1 playbook checked: 0 valid, 1 invalid (1 problem)\n")


def test_usage_error_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 1
    assert "Missing argument 'PATHS...'" in capsys.readouterr().err
    assert main(["validate", "--format", "yaml", GOOD]) == 1


def test_json_format() -> None:
    result = CliRunner().invoke(cli, ["validate", "--format", "json", GOOD, BAD],
                                standalone_mode=False)
    data = json.loads(result.output)
    assert data["valid"] is False
    assert [f["valid"] for f in data["files"]] == [True, False]
    assert data["files"][1]["problems"][0] == {
        "file": BAD, "line": 9, "column": 13, "path": "steps[0].action",
        "message": "unknown action 'ec2.stopp'",
        "hint": data["files"][1]["problems"][0]["hint"]}
    assert data["files"][1]["problems"][0]["hint"].startswith("did you mean 'ec2.stop'?")


def test_sarif_format() -> None:
    result = CliRunner().invoke(cli, ["validate", "--format", "sarif", BAD],
                                standalone_mode=False)
    sarif = json.loads(result.output)
    assert sarif["version"] == "2.1.0"
    (finding,) = sarif["runs"][0]["results"]
    assert finding["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": BAD}, "region": {"startLine": 9, "startColumn": 13}}
    assert finding["message"]["text"].startswith("steps[0].action: unknown action 'ec2.stopp'")


def test_junit_format() -> None:
    result = CliRunner().invoke(cli, ["validate", "--format", "junit", GOOD, BAD],
                                standalone_mode=False)
    suite = ET.fromstring(result.output.split("?>", 1)[1])
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    failure = suite.findall("testcase")[1].find("failure")
    assert failure is not None and "unknown action 'ec2.stopp'" in (failure.text or "")


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["validate", "playbooks/"],
                                  ["schema"], ["list-actions"]])
def test_light_commands_do_not_import_boto3(args: list[str]) -> None:
    code = ("import sys\nfrom remediate.cli.main import main\nrc = main(sys.argv[1:])\n"
            "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto3'\n"
            "raise SystemExit(rc)")
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_help_lists_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Exit codes: 0 every target succeeded" in out
    assert "validate" in out and "list-actions" in out


def test_unexpected_error_writes_a_crash_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    import remediate.cli.validate as validate_module

    def explode(*_args: object) -> object:
        raise RuntimeError("boom")

    monkeypatch.setenv("REMEDIATE_CRASH_DIR", str(tmp_path))
    monkeypatch.setattr(validate_module, "load_file", explode)
    assert main(["validate", GOOD]) == 3
    err = capsys.readouterr().err
    assert err.startswith("unexpected error: RuntimeError: boom\ncrash log: ")
    (log,) = tmp_path.glob("crash-*.log")
    assert "RuntimeError: boom" in log.read_text()
