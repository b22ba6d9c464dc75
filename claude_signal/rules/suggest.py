"""“Did you mean …” for mistyped commands: phone keyboards make typos, and a refusal that names the likely
command saves a round of reading the help. Pure."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

SESSION_WORDS = ("start", "list", "resume", "stop", "help")


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The one candidate close enough to ``word`` to be what was meant, if any."""
    found = difflib.get_close_matches(word.lower(), list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def command(text: str, names: Iterable[str]) -> str | None:
    """The message with its mistyped command word corrected (``/sesion list`` → ``/session list``)."""
    head, _, rest = text.strip().partition(" ")
    name = closest(head.lstrip("/"), names)
    if name is None:
        return None
    return f"/{name} {rest}".strip()
