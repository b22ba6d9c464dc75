"""A missing or invalid setting stops the program with one line that names it."""

import subprocess
import sys
from pathlib import Path

import pytest

from claude_signal.config import ConfigError, load_settings


def test_lists_are_comma_separated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLAUDE_SIGNAL_AUTHORIZED", "+15551234567, 0b6f-uuid ,")
    monkeypatch.setenv("CLAUDE_SIGNAL_PROJECT_ROOTS", f"{tmp_path},~/code")
    settings = load_settings()
    assert settings.authorized == ["+15551234567", "0b6f-uuid"]
    assert settings.project_roots == [tmp_path, Path.home() / "code"]


def test_defaults_live_in_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLAUDE_SIGNAL_HOME", str(tmp_path))
    settings = load_settings()
    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path / 'claude-signal.db'}"
    # Only short tasks hold their message, so redelivery after a crash comes in minutes, not an hour.
    assert settings.visibility_timeout <= 600 < settings.turn_timeout


@pytest.mark.parametrize(("var", "value"), [("CLAUDE_SIGNAL_LEASE_TTL", "soon"),
                                            ("CLAUDE_SIGNAL_SIGNAL_API", "localhost:8080"),
                                            ("CLAUDE_SIGNAL_HOST", "bad host!")])
def test_invalid_setting_is_one_named_line(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(var + ":")
    assert "\n" not in message


def test_cli_reports_bad_setting_and_exits_2(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CLAUDE_SIGNAL_LEASE_TTL": "-1"}
    done = subprocess.run([sys.executable, "-m", "claude_signal.ops.cli", "check"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "claude-signal: CLAUDE_SIGNAL_LEASE_TTL: Input should be greater than 0"]


def test_turn_slots_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().max_turns >= 8
    monkeypatch.setenv("CLAUDE_SIGNAL_MAX_TURNS", "0")
    with pytest.raises(ConfigError, match=r"^CLAUDE_SIGNAL_MAX_TURNS: "):
        load_settings()


def test_flower_auth_needs_a_user_and_a_password() -> None:
    assert load_settings(flower_auth="me:secret").flower_auth == "me:secret"
    for bad in ("nocolon", ":pw", "me:"):
        with pytest.raises(ConfigError, match="CLAUDE_SIGNAL_FLOWER_AUTH: must be user:password"):
            load_settings(flower_auth=bad)


@pytest.mark.parametrize(("value", "expected"), [("5", 5.0), ("$2.50", 2.5), (" ", None)])
def test_daily_budget_is_dollars(monkeypatch: pytest.MonkeyPatch, value: str, expected: float | None) -> None:
    monkeypatch.setenv("CLAUDE_SIGNAL_DAILY_BUDGET", value)
    assert load_settings().daily_budget == expected


@pytest.mark.parametrize("value", ["five", "0", "-1", "nan", "inf"])
def test_a_bad_daily_budget_is_one_named_line(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CLAUDE_SIGNAL_DAILY_BUDGET", value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith("CLAUDE_SIGNAL_DAILY_BUDGET: must be ")
    assert "\n" not in str(caught.value)
