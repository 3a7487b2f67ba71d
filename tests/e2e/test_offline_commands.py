"""The commands that need no AWS at all, as real processes (what CI pipelines call):
exit codes and machine-readable output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli_support import OFFLINE_REPAIR, PLAYBOOKS


def remediate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "remediate", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd, check=False)


@pytest.mark.slow
def test_validate_schema_list_actions_and_iam_policy_as_processes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: x\nsteps: []\n", encoding="utf-8")

    ok = remediate("validate", str(PLAYBOOKS), cwd=tmp_path)
    invalid = remediate("validate", str(bad), cwd=tmp_path)
    schema = remediate("schema", cwd=tmp_path)
    actions = remediate("list-actions", cwd=tmp_path)
    policy = remediate("iam-policy", OFFLINE_REPAIR, cwd=tmp_path)
    missing = remediate("iam-policy", str(tmp_path / "nope.yaml"), cwd=tmp_path)

    assert (ok.returncode, ok.stdout.splitlines()[-1]) == (0, "4 playbooks valid"), ok.stderr
    assert invalid.returncode == 1
    assert f"{bad}:3:8: steps: expected 1 to 200 items, found 0" in invalid.stdout
    assert invalid.stdout.splitlines()[-1] == (
        "1 playbook checked: 0 valid, 1 invalid (2 problems)")
    assert schema.returncode == 0 and json.loads(schema.stdout)["$schema"].endswith("schema")
    assert actions.returncode == 0 and "ec2.detach_root  (mutating;" in actions.stdout
    assert policy.returncode == 0
    allowed = {a for s in json.loads(policy.stdout)["Statement"] if s["Effect"] == "Allow"
               for a in s["Action"]}
    assert {"ec2:DetachVolume", "ec2:AttachVolume", "ssm:SendCommand"} <= allowed
    assert missing.returncode == 1 and "Traceback" not in missing.stderr + missing.stdout
    for process in (ok, invalid, schema, actions, policy, missing):
        assert "Traceback" not in process.stderr
