"""The environment a ``claude`` child gets: an allowlist, never the worker's own.

Claude (and every tool it runs, including code an attacker may have planted in a project) would otherwise
inherit the bot's database URL, broker URL and passwords, and could write approvals or publish commands.
So only what Claude Code needs to run is passed, plus names the operator lists in ``CLAUDE_SIGNAL_CLAUDE_ENV``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

EXACT = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "TZ", "TMPDIR", "CLAUDE_CONFIG_DIR",
    "DISABLE_AUTOUPDATER", "SSH_AUTH_SOCK", "NODE_EXTRA_CA_CERTS",
    "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
})
PREFIXES = ("LC_", "ANTHROPIC_", "CLAUDE_CODE_")
# Cloud credentials only reach Claude when Claude Code is told to use that cloud (Bedrock or Vertex AI).
CLOUD_PREFIXES = {"CLAUDE_CODE_USE_BEDROCK": ("AWS_",),
                  "CLAUDE_CODE_USE_VERTEX": ("GOOGLE_", "CLOUD_ML_", "VERTEX_REGION_")}
# Never passed, not even when listed: the bot's settings, a nested-session marker, service passwords.
NEVER_PREFIXES = ("CLAUDE_SIGNAL_", "POSTGRES_", "FLOWER_", "REDIS_")
NEVER = frozenset({"CLAUDECODE"})


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no")


def allowed(name: str, base: Mapping[str, str], extra: Iterable[str] = ()) -> bool:
    """Whether ``name`` from ``base`` may reach a ``claude`` child."""
    if name in NEVER or name.startswith(NEVER_PREFIXES):
        return False
    if name in EXACT or name.startswith(PREFIXES) or name in set(extra):
        return True
    return any(_truthy(base.get(switch)) and name.startswith(prefixes)
               for switch, prefixes in CLOUD_PREFIXES.items())


def claude_env(base: Mapping[str, str], extra: Iterable[str] = ()) -> dict[str, str]:
    """The allowlisted part of ``base``; ``extra`` names more variables to pass (``CLAUDE_SIGNAL_CLAUDE_ENV``)."""
    names = frozenset(extra)
    return {k: v for k, v in base.items() if allowed(k, base, names)}
