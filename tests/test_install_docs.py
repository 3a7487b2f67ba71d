"""What a new user copies first: the Quick start, the package's extras, the pre-commit pin.

Each of these once misled a first-time user: the Quick start's `pip install -e .`
ran from wherever the shell was, moto warned `moto 5.2.5 does not provide the
extra 'workspaces'`, and the pre-commit snippet pinned a tag (`v0.1.0`) that was
never made.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end]


def test_the_quick_start_says_to_clone_and_cd_before_installing() -> None:
    quick = _section("Quick start")
    clone = re.search(r"`git clone (\S+ )+&& cd (\S+)`", quick)
    assert clone is not None, quick
    # Said before the first install command, which needs the repository as its folder.
    assert clone.start() < quick.index("pip install -e")


def test_every_extra_asked_of_a_dependency_is_one_it_provides() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = [Requirement(text) for group in project["optional-dependencies"].values()
                    for text in group]
    asked = {(r.name, extra) for r in requirements for extra in r.extras}
    assert ("moto", "server") in asked
    provided = {(name, extra) for name in {n for n, _ in asked}
                for extra in metadata.metadata(name).get_all("Provides-Extra") or []}
    assert sorted(asked - provided) == []


def test_the_pre_commit_snippet_pins_a_commit_and_names_a_hook_of_this_repository() -> None:
    snippet = re.search(r"```yaml\n(repos:\n.*?)```", README, re.S)
    assert snippet is not None
    repo = yaml.safe_load(snippet.group(1))["repos"][0]
    tags = subprocess.run(["git", "tag", "--list"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.split()
    # A full commit id (what pre-commit accepts without a tag), or a tag that exists.
    assert re.fullmatch(r"[0-9a-f]{40}", repo["rev"]) or repo["rev"] in tags, repo["rev"]
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert [h["id"] for h in repo["hooks"]] == [hooks[0]["id"]]
