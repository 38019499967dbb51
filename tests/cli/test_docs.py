"""The README and docs/ carry what a user needs: no reference outside the repository, the
contract in docs/spec.md with every section the README cites and every verb."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_points_inside_the_repository() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "../" not in readme and "shared/SPEC" not in readme
    assert "docs/spec.md" in readme


def test_spec_sections_cited_exist() -> None:
    spec = (ROOT / "docs" / "spec.md").read_text()
    sections = {int(n) for n in re.findall(r"^## (\d+)\.", spec, re.M)}
    cited = {int(n) for n in re.findall(r"SPEC (\d+)", (ROOT / "README.md").read_text())}
    assert cited and cited <= sections


def test_spec_has_every_verb_exit_code_and_json_shape() -> None:
    from jobctl.cli import VERBS

    spec = (ROOT / "docs" / "spec.md").read_text()
    core = {"add", "edit", "list", "show", "rm", "pause", "resume", "next", "run", "retry",
            "cancel", "history", "logs", "dead", "prune", "runner", "status"}  # fmt: skip
    assert core <= set(VERBS)
    for verb in core:
        assert f"jobctl {verb}" in spec, verb
    for text in ("| 4 | not found", "run:  {", "status: {", "abandoned", "fall back"):
        assert text in spec, text
