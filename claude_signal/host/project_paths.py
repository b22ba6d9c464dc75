"""Where a session may open: an existing directory under one of ``PROJECT_ROOTS``, symlinks resolved."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from claude_signal.config import Settings

VERSION_TIMEOUT = 15.0


class PathRejected(Exception):
    """The path cannot host a session; ``str()`` says why and what to do, for the user."""


class ClaudeUnavailable(Exception):
    """``claude --version`` did not run on this host; ``str()`` says what to do."""


def protected_dirs(home: Path) -> list[Path]:
    """Where no session may open, whatever the roots say: the bot's data directory (its database, journal
    and signing key) and Claude's own configuration (credentials, transcripts, settings)."""
    dirs = [home, Path.home() / ".claude"]
    if os.environ.get("CLAUDE_CONFIG_DIR"):
        dirs.append(Path(os.environ["CLAUDE_CONFIG_DIR"]))
    return [Path(os.path.expanduser(str(d))).resolve() for d in dirs]


def resolve_project(raw: str, roots: Sequence[Path], *, protected: Sequence[Path] | None = None) -> Path:
    """Expand ``~``, resolve ``..`` and symlinks, and insist on a directory inside an allowed root and outside
    the protected directories (by default those of this process's settings)."""
    if protected is None:
        from claude_signal.config import get_settings

        protected = protected_dirs(get_settings().home)
    path = Path(os.path.expanduser(raw))
    if not path.is_absolute():
        path = under_roots(raw, roots)
    try:
        resolved = path.resolve(strict=True)
    except FileNotFoundError:
        raise PathRejected(f"{raw} does not exist on this host.") from None
    except (OSError, RuntimeError) as error:
        raise PathRejected(f"{raw} cannot be opened ({error.__class__.__name__}).") from None
    if not resolved.is_dir():
        raise PathRejected(f"{raw} is not a directory.")
    allowed = [Path(os.path.expanduser(str(r))).resolve() for r in roots]
    if not any(resolved == root or resolved.is_relative_to(root) for root in allowed):
        shown = ", ".join(str(r) for r in allowed)
        raise PathRejected(f"{raw} is outside the allowed project roots ({shown}); "
                           "the operator can widen CLAUDE_SIGNAL_PROJECT_ROOTS.")
    if any(resolved == p or resolved.is_relative_to(p) for p in protected):
        raise PathRejected(f"{raw} is inside claude-signal's data directory or Claude's configuration; "
                           "sessions cannot open there.")
    return resolved


def under_roots(name: str, roots: Sequence[Path]) -> Path:
    """A relative name (``shop``, ``work/shop``) is looked up in each project root: typing the whole path
    on a phone is tedious, and with one match there is nothing to guess."""
    if ".." in Path(name).parts:
        raise PathRejected(f"'{name}' may not contain '..'; use ~/… or /….")
    found = [Path(os.path.expanduser(str(r))) / name for r in roots]
    found = [p for p in found if p.is_dir()]
    if len(found) == 1:
        return found[0]
    if found:
        raise PathRejected(f"'{name}' is in several project roots ({', '.join(map(str, found))}); "
                           "type the whole path.")
    shown = ", ".join(str(r) for r in roots)
    raise PathRejected(f"There is no '{name}' in the project roots ({shown}); use ~/… or /… for another place.")


def recheck_project(path: str, settings: Settings) -> None:
    """Before each turn: the directory must still pass, and still be the one the session opened (a symlink
    swapped since then, or a root narrowed, stops the turn)."""
    resolved = resolve_project(path, settings.project_roots, protected=protected_dirs(settings.home))
    if str(resolved) != path:
        raise PathRejected(f"{path} now leads to {resolved}; start a new session there if that is intended.")


def check_claude(claude_bin: str, host: str, *, timeout: float = VERSION_TIMEOUT,
                 extra: Sequence[str] | None = None) -> str:
    """Run ``claude --version`` so a session never starts on a host that cannot run Claude; with the
    environment a turn gets, so a check that passes means a turn can start."""
    from claude_signal.claude.environment import claude_env
    from claude_signal.config import get_settings

    env = claude_env(os.environ, get_settings().claude_env if extra is None else extra)
    try:
        done = subprocess.run([claude_bin, "--version"], capture_output=True, text=True, timeout=timeout,
                              env=env, stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError:
        raise ClaudeUnavailable(
            f"Claude Code is not installed on {host} (looked for '{claude_bin}'). Install it there with "
            "`npm install -g @anthropic-ai/claude-code`, or set CLAUDE_SIGNAL_CLAUDE_BIN.") from None
    except PermissionError:
        raise ClaudeUnavailable(f"'{claude_bin}' on {host} is not executable.") from None
    except subprocess.TimeoutExpired:
        raise ClaudeUnavailable(f"'{claude_bin} --version' on {host} did not answer within {timeout:.0f}s.") \
            from None
    if done.returncode != 0:
        first = (done.stderr or done.stdout).strip().splitlines()[:1]
        detail = f": {first[0][:200]}" if first else ""
        raise ClaudeUnavailable(f"'{claude_bin} --version' failed on {host} (exit {done.returncode}){detail}.")
    return done.stdout.strip()
