"""The README's two commands are the ones CI runs; a drift between them would make the README lie."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_ci_runs_exactly_the_readme_test_command() -> None:
    setup, test = readme_commands()[:2]
    assert "claude-signal up" in setup
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test.strip() in ci_lines
