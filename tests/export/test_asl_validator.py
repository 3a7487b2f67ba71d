"""Every built-in playbook's export, with the parameters and options the tests use, passes
an independent validator of AWS's definition rules (moto accepts definitions AWS rejects).

The validator is the ``asl-validator`` npm package (4.0.0): the environment variable
``ASL_VALIDATOR`` names its executable, else ``node_modules/.bin/asl-validator`` in the
repository or next to it is used. Without it these tests are skipped, saying why; with
``REMEDIATE_REQUIRE_ASL_VALIDATOR=1`` (CI: .ci/run installs it) they fail instead.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sfn_support import builtin

from remediate.export import compile_playbook

REPO = Path(__file__).resolve().parents[2]
RESTORE_AND_REBUILD = frozenset({"workspace-restore-data-loss", "workspace-rebuild-data-loss"})


def validator() -> str | None:
    """The asl-validator executable, or None."""
    named = os.environ.get("ASL_VALIDATOR")
    if named:
        return named
    for folder in (REPO, REPO.parent):
        found = folder / "node_modules" / ".bin" / "asl-validator"
        if found.is_file():
            return str(found)
    return None


@pytest.fixture(scope="module")
def asl_validator() -> str:
    found = validator()
    if found is None:
        if os.environ.get("REMEDIATE_REQUIRE_ASL_VALIDATOR") == "1":
            pytest.fail("REMEDIATE_REQUIRE_ASL_VALIDATOR=1 but no asl-validator: set "
                        "ASL_VALIDATOR, or `npm install asl-validator@4.0.0` next to the repo")
        pytest.skip("asl-validator is not installed (set ASL_VALIDATOR to its executable, or "
                    "`npm install asl-validator@4.0.0` in the repository)")
    return found


def case(name: str, *, accepted: frozenset[str] = frozenset(),
         options: dict[str, str] | None = None, **params: str) -> Any:
    label = "-".join([name.removesuffix(".yaml"), *(f"{k}={v}" for k, v in params.items()),
                      *sorted(accepted), *(options or {})])
    return pytest.param(name, params, accepted, options or {}, id=label)


CASES = [
    case("ec2-reboot-first.yaml"),
    case("ec2-reboot-first.yaml", max_reboots="1"),
    case("ec2-reboot-first.yaml", max_reboots="2"),
    case("ec2-reboot-first.yaml", options={"items_bucket": "remediate-items"}),
    case("ec2-reboot-first.yaml", options={
        "role_arn": "arn:aws:iam::123456789012:role/remediate-target"}),
    case("ec2-offline-repair.yaml"),
    case("ec2-offline-repair.yaml", rescue_image_id="ami-0123456789abcdef0"),
    case("ec2-offline-repair.yaml", hold_capacity="false"),
    case("ec2-replace-root-volume.yaml"),
    case("ec2-replace-root-volume.yaml", accepted=frozenset({"root-replacement-data-loss"})),
    case("ec2-replace-root-volume.yaml", snapshot_id="snap-00000000"),
    case("workspaces-recover.yaml"),
    case("workspaces-recover.yaml", accepted=frozenset({"workspace-restore-data-loss"})),
    case("workspaces-recover.yaml", accepted=RESTORE_AND_REBUILD),
]


@pytest.mark.parametrize(("name", "params", "accepted", "options"), CASES)
def test_the_export_passes_the_asl_validator(
        asl_validator: str, tmp_path: Path, name: str, params: dict[str, str],
        accepted: frozenset[str], options: dict[str, str]) -> None:
    playbook, bound = builtin(name, **params)
    definition = tmp_path / "definition.asl.json"
    definition.write_text(json.dumps(compile_playbook(playbook, bound, accepted=accepted,
                                                      **options)), encoding="utf-8")

    checked = subprocess.run([asl_validator, "--json-path", str(definition)],
                             capture_output=True, text=True, timeout=120, check=False)

    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_validator_rejects_what_aws_rejects(asl_validator: str, tmp_path: Path) -> None:
    """(So a pass above means something.)"""
    twice = {"StartAt": "a", "States": {
        "a": {"Type": "Parallel", "Next": "b", "Branches": [
            {"StartAt": "b", "States": {"b": {"Type": "Succeed"}}}]},
        "b": {"Type": "Succeed"}}}
    definition = tmp_path / "twice.asl.json"
    definition.write_text(json.dumps(twice), encoding="utf-8")

    checked = subprocess.run([asl_validator, "--json-path", str(definition)],
                             capture_output=True, text=True, timeout=120, check=False)

    assert checked.returncode != 0
    assert "DUPLICATE_STATE_NAMES" in checked.stdout + checked.stderr
