"""First runs with bad or missing settings: the CLI as a subprocess, one line naming the setting each."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness import free_port

CLI = [sys.executable, "-m", "claude_signal.ops.cli"]


def run(tmp_path: Path, *argv: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CLAUDE_SIGNAL_HOME": str(tmp_path / "h"),
           **{f"CLAUDE_SIGNAL_{k.upper()}": v for k, v in settings.items()}}
    return subprocess.run([*CLI, *argv], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def one_line(done: subprocess.CompletedProcess[str], setting: str) -> str:
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"claude-signal: {setting}: "), done.stderr
    assert done.stdout == ""
    return lines[0]


@pytest.mark.parametrize("url", ["notadb://x", "not a url", "mysql://u@h/db"])
def test_db_upgrade_with_an_invalid_database_url(tmp_path: Path, url: str) -> None:
    one_line(run(tmp_path, "db", "upgrade", database_url=url), "CLAUDE_SIGNAL_DATABASE_URL")


def test_db_upgrade_with_an_unreachable_postgresql(tmp_path: Path) -> None:
    url = f"postgresql://me:s3cret@127.0.0.1:{free_port()}/x"
    line = one_line(run(tmp_path, "db", "upgrade", database_url=url), "CLAUDE_SIGNAL_DATABASE_URL")
    assert "refused" in line and "s3cret" not in line


def test_db_upgrade_prints_one_line_and_no_library_logs(tmp_path: Path) -> None:
    done = run(tmp_path, "db", "upgrade")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.strip().splitlines() == [f"database is up to date (sqlite:///{tmp_path}/h/claude-signal.db)"]


@pytest.mark.parametrize("command", [["up"], ["listen"], ["worker"], ["check"]])
def test_every_command_names_a_bad_broker_url(tmp_path: Path, command: list[str]) -> None:
    one_line(run(tmp_path, *command, broker_url="amqp://guest@x//", account="+15550000001",
                 authorized="+15550000002"), "CLAUDE_SIGNAL_BROKER_URL")


def test_up_refuses_to_start_when_nobody_is_authorized(tmp_path: Path) -> None:
    done = run(tmp_path, "up", account="+15550000001")
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("claude-signal up: CLAUDE_SIGNAL_AUTHORIZED is empty, so nobody could use the bot")
    assert not (tmp_path / "h" / "redis.sock").exists()


def test_check_says_nobody_is_authorized(tmp_path: Path) -> None:
    done = run(tmp_path, "check", claude_bin="/bin/true", signal_api=f"http://127.0.0.1:{free_port()}")
    assert [line for line in done.stdout.splitlines() if "nobody is authorized" in line] == [
        "authorized:    nobody: CLAUDE_SIGNAL_AUTHORIZED is empty: nobody is authorized, so every message is "
        "ignored; set it to your Signal number"]


@pytest.mark.parametrize(("command", "expected"), [
    ("worker", "claude-signal worker: warning: CLAUDE_SIGNAL_AUTHORIZED is empty: nobody is authorized"),
    ("listen", "CLAUDE_SIGNAL_AUTHORIZED is empty: every message will be dropped"),
])
def test_worker_and_listener_say_nobody_is_authorized(tmp_path: Path, command: str, expected: str) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CLAUDE_SIGNAL_HOME": str(tmp_path / "h"),
           "CLAUDE_SIGNAL_ACCOUNT": "+15550000001", "CLAUDE_SIGNAL_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0",
           "CLAUDE_SIGNAL_SIGNAL_API": f"http://127.0.0.1:{free_port()}"}
    proc = subprocess.Popen([*CLI, command], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        lines: list[str] = []
        while time.monotonic() < deadline and proc.stderr is not None:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if expected in line:
                break
        assert sum(expected in line for line in lines) == 1, lines
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
