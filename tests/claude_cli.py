"""The real Claude Code CLI for the conversation tests: installed from npm at a pinned version, cached.

The CLI's wording and fields change between releases, so the suite runs against one version; bumping
:data:`PINNED` and running the suite is how a protocol change in a newer CLI is found. The install lands in
``$CLAUDE_SIGNAL_TEST_CLI_CACHE`` (default ``~/.cache/claude-signal/claude-code``), one folder per version,
so it costs a minute once and nothing after. ``.ci/run`` runs ``python -m tests.claude_cli`` beforehand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

PACKAGE = "@anthropic-ai/claude-code"
PINNED = os.environ.get("CLAUDE_SIGNAL_TEST_CLI_VERSION", "2.1.197")
CACHE = Path(os.environ.get("CLAUDE_SIGNAL_TEST_CLI_CACHE", Path.home() / ".cache" / "claude-signal" / "claude-code"))


class Unavailable(Exception):
    """The pinned CLI cannot be had here (no npm, or the registry did not answer); the message says which."""


def _binary(prefix: Path) -> Path:
    return prefix / "node_modules" / ".bin" / "claude"


def _version_of(binary: Path) -> str | None:
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.split()[0] if out.returncode == 0 and out.stdout.strip() else None


@lru_cache(maxsize=1)
def install(version: str = PINNED) -> Path:
    """The ``claude`` executable of ``version``, installing it first if the cache lacks it."""
    prefix = CACHE / version
    binary = _binary(prefix)
    if _version_of(binary) == version:
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise Unavailable("npm is not installed (apt-get install nodejs npm), so the real Claude Code CLI "
                          f"{version} cannot be installed")
    prefix.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                               f"{PACKAGE}@{version}"], capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        raise Unavailable(f"npm install {PACKAGE}@{version} took over 10 minutes (registry unreachable?)") from None
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise Unavailable(f"npm install {PACKAGE}@{version} failed: {tail}")
    found = _version_of(binary)
    if found != version:
        raise Unavailable(f"{binary} reports version {found!r} after installing {version}")
    return binary


def main() -> int:
    try:
        print(install())
    except Unavailable as why:
        print(f"real Claude Code CLI unavailable: {why}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
