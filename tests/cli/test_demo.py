"""`remediate demo`: the README's first command must work, with no AWS account."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from cli_support import json_file, run_cli, use_fake_aws_env


def section(out: str, title: str) -> list[str]:
    """The lines of the demo's ``=== title ===`` section."""
    start = out.index(f"=== {title} ")
    end = out.find("\n=== ", start + 1)
    return out[start:end if end >= 0 else len(out)].splitlines()[1:]


def test_demo_breaks_a_fleet_audits_it_fixes_it_and_reports(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    use_fake_aws_env(monkeypatch)
    monkeypatch.chdir(tmp_path)

    code = run_cli("demo", "--no-progress", "--fleet", "1", "--workspaces", "2",
                   "--report-dir", str(tmp_path / "reports"))

    out = capsys.readouterr().out
    assert code == 0, out
    titles = [line.split(" ", 1)[1].rstrip("= ") for line in out.splitlines()
              if line.startswith("=== ")]
    assert titles == [
        "the fleet, broken (tagged incident=crowdstrike-2024-07-19)",
        "1. dry-run audit: the offline repair, for every instance",
        "2. route 1: reboot (up to 3 times)",
        "3. route 2: offline repair through rescue instances, for the rest",
        "4. route 3: replace the root volume, for instance-store and Spot instances",
        "5. WorkSpaces: start, reboot, restore, rebuild",
        "the fleet, after",
        "needs a human (refused on purpose: each line says what to do)"]
    broken = section(out, "the fleet, broken")
    assert "     1 plain: BROKEN" in broken and "     4 reboot_fixable: BROKEN" in broken
    after = section(out, "the fleet, after")
    # Fixed: everything but what a human must see to (refused on purpose, and said why).
    assert sorted(line.split()[1] for line in after if "BROKEN" in line) == [
        "encrypted_bad_key:", "marketplace:", "stop_protected:"]
    assert "     1 plain: healthy" in after and "     2 WorkSpaces AVAILABLE" in after
    reports = tmp_path / "reports"
    route_2 = section(out, "3. route 2: offline repair through rescue instances, for the rest")
    assert route_2[-1] == (
        f"-> exit code 2: 5 refused, 4 skipped, 2 succeeded (reports: {reports}/"
        "ec2-offline-repair.json, .xml, .md)")
    route_3 = section(
        out, "4. route 3: replace the root volume, for instance-store and Spot instances")
    assert route_3[-1].startswith("-> exit code 0: 2 succeeded ")
    # The closing report: each target no route fixed, with what a human must do.
    human = section(out, "needs a human")
    assert sorted(line.split(": ")[1:3] for line in human) == [
        ["refused", "blocked by kms-key-unusable"],
        ["refused", "blocked by marketplace-product-code"],
        ["refused", "blocked by stop-protection"]]
    assert any("(hint: turn it off first: aws ec2 modify-instance-attribute "
               "--no-disable-api-stop)" in line for line in human)
    report = json_file(tmp_path / "reports" / "ec2-offline-repair.json")
    assert report["dry_run"] is False
    # Route 2 fixed the plain and hibernation instances; route 1 had fixed the reboot-fixable
    # ones; the 5 pitfalls were refused (3 for good, 2 left to route 3).
    assert Counter(t["status"] for t in report["targets"]) == {
        "succeeded": 2, "skipped": 4, "refused": 5}
    assert {t["error"] for t in report["targets"] if t["status"] == "skipped"} == {
        "already healthy (status checks pass)"}
    # The dry-run audit's reports are not overwritten by route 2's, of the same playbook.
    audit = section(out, "1. dry-run audit: the offline repair, for every instance")
    assert audit[-1].endswith(f"(reports: {reports}/ec2-offline-repair-plan.json, .xml, .md)")
    plan = json_file(reports / "ec2-offline-repair-plan.json")
    assert (plan["dry_run"], plan["run_id"] != report["run_id"]) == (True, True)
    assert (reports / "ec2-offline-repair-plan.xml").stat().st_size > 0
    for name in ("ec2-reboot-first", "ec2-replace-root-volume", "workspaces-recover"):
        for ext in ("json", "xml", "md"):
            assert (tmp_path / "reports" / f"{name}.{ext}").stat().st_size > 0
    assert not (tmp_path / ".remediate").exists()  # the journal went to --report-dir
