"""Typos get a suggestion; names under the project roots open without the whole path."""

from __future__ import annotations

from pathlib import Path

import pytest

from claude_signal.host.project_paths import PathRejected, resolve_project
from claude_signal.rules import commands as c
from claude_signal.rules import replies


def test_a_mistyped_command_names_the_likely_one() -> None:
    assert "Did you mean /session list?" in replies.unknown_command("/sesion", "/sesion list")
    assert "Did you mean /status?" in replies.unknown_command("/stauts", "/stauts")
    assert "Did you mean" not in replies.unknown_command("/xyzzy", "/xyzzy")


def test_a_mistyped_session_word_names_the_likely_one() -> None:
    usage = c.parse("/session strat shop")
    assert isinstance(usage, c.Usage) and "Did you mean /session start shop?" in usage.text


def test_a_name_is_looked_up_in_the_roots(tmp_path: Path) -> None:
    (tmp_path / "a" / "shop").mkdir(parents=True)
    (tmp_path / "b" / "blog").mkdir(parents=True)
    (tmp_path / "b" / "shop").mkdir()
    roots = [tmp_path / "a", tmp_path / "b"]
    assert resolve_project("blog", roots, protected=[]) == (tmp_path / "b" / "blog").resolve()
    with pytest.raises(PathRejected, match="several project roots"):
        resolve_project("shop", roots, protected=[])
    with pytest.raises(PathRejected, match="There is no 'nope' in the project roots"):
        resolve_project("nope", roots, protected=[])
    with pytest.raises(PathRejected, match="may not contain"):
        resolve_project("../a/shop", [tmp_path / "b"], protected=[])


def test_a_refusal_names_the_path_once() -> None:
    text = replies.start_failed("/very/long/path", "/very/long/path is outside the allowed project roots (x)")
    assert text.count("/very/long/path") == 1 and "in /very/long/path: it is outside" in text
