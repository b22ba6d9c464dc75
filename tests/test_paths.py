"""Where a session may open, and that it still may before each turn: real directories and symlinks."""

from __future__ import annotations

from pathlib import Path

import pytest

from claude_signal.config import load_settings
from claude_signal.core import turn_state as turns
from claude_signal.core.run_turn import spec_for
from claude_signal.host.project_paths import PathRejected, protected_dirs, recheck_project, resolve_project


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    for d in (".claude-signal/logs", ".claude/projects", "code/shop", "cfg"):
        (tmp_path / d).mkdir(parents=True)
    return tmp_path


def test_the_home_default_never_opens_the_bots_data_or_claudes_config(home: Path) -> None:
    protected = protected_dirs(home / ".claude-signal")
    assert resolve_project("~/code/shop", [home], protected=protected) == home / "code" / "shop"
    for raw in ("~/.claude-signal", "~/.claude-signal/logs", "~/.claude", "~/.claude/projects",
                "~/code/../.claude"):
        with pytest.raises(PathRejected, match="data directory or Claude's configuration"):
            resolve_project(raw, [home], protected=protected)


def test_claude_config_dir_is_protected_too(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(home / "cfg"))
    with pytest.raises(PathRejected):
        resolve_project(str(home / "cfg"), [home], protected=protected_dirs(home / ".claude-signal"))


def test_a_symlink_into_the_data_dir_is_rejected(home: Path) -> None:
    (home / "code" / "sneaky").symlink_to(home / ".claude-signal")
    with pytest.raises(PathRejected):
        resolve_project("~/code/sneaky", [home], protected=protected_dirs(home / ".claude-signal"))


def test_each_turn_rechecks_the_directory(home: Path) -> None:
    settings = load_settings(home=home / ".claude-signal", project_roots=[home / "code"])
    shop = str(home / "code" / "shop")
    turn = turns.ClaimedTurn(turn_id=1, session_id="s", prompt="hi", conversation="c", project_path=shop,
                             claude_session_id="00000000-0000-0000-0000-000000000000", permission_mode="default",
                             session_version=0)
    assert spec_for(turn, settings).cwd == shop
    (home / "code" / "shop").rmdir()
    (home / "code" / "shop").symlink_to(home / ".claude-signal")  # swapped after the session started
    with pytest.raises(PathRejected):
        spec_for(turn, settings)
    (home / "code" / "shop").unlink()
    (home / "code" / "elsewhere").mkdir()
    (home / "code" / "shop").symlink_to(home / "code" / "elsewhere")
    with pytest.raises(PathRejected, match="now leads to"):
        recheck_project(shop, settings)
    narrowed = settings.model_copy(update={"project_roots": [home / "code" / "elsewhere"]})
    (home / "code" / "shop").unlink()
    (home / "code" / "shop").mkdir()
    with pytest.raises(PathRejected, match="outside the allowed project roots"):
        recheck_project(shop, narrowed)
