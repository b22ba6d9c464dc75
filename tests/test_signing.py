"""The installation key and the message signature: made once, private, and bound to the whole message."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from claude_signal.config import ConfigError, load_settings
from claude_signal.wire.signing import KEY_FILE, digest, load_key, valid

KEY = b"k" * 64


def test_key_is_made_once_private_and_reused(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    first = load_key(settings)
    path = tmp_path / "home" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32 and load_key(settings) == first
    assert [p.name for p in path.parent.iterdir()] == [KEY_FILE]  # no temporary file left behind


def test_the_setting_wins_for_several_machines(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, secret_key="s" * 40)
    assert load_key(settings) == b"s" * 40
    assert not (tmp_path / KEY_FILE).exists()


def test_a_short_setting_is_one_line_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"^CLAUDE_SIGNAL_SECRET_KEY: .*32"):
        load_settings(secret_key="short")


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_text("x" * 64)
    (tmp_path / KEY_FILE).chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others; run chmod 600"):
        load_key(load_settings(home=tmp_path))


def test_signature_covers_name_id_args_and_kwargs() -> None:
    sig = digest(KEY, "command.handle", "in:a:1", [{"text": "/status", "n": 1.5}], {})
    assert valid(KEY, sig, "command.handle", "in:a:1", ({"n": 1.5, "text": "/status"},), {})
    assert not valid(KEY, sig, "command.handle", "in:a:1", [{"text": "/mode bypassPermissions", "n": 1.5}], {})
    assert not valid(KEY, sig, "session.start", "in:a:1", [{"text": "/status", "n": 1.5}], {})
    assert not valid(KEY, sig, "command.handle", "in:a:2", [{"text": "/status", "n": 1.5}], {})
    assert not valid(b"other" * 10, sig, "command.handle", "in:a:1", [{"text": "/status", "n": 1.5}], {})
    assert not valid(KEY, None, "command.handle", "in:a:1", [{"text": "/status", "n": 1.5}], {})
