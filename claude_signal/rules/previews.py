"""What an approval request shows beyond its one-line summary, so a person can decide from the phone:
a compact diff for ``Edit``, ``MultiEdit`` and ``Write``, the whole command for ``Bash``.

Pure except :func:`read_current`, which the worker on the session's host uses to diff a ``Write`` against
the file it would replace.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from claude_signal.rules.replies import plural

MAX_LINES = 30
MAX_COMMAND = 3000
MAX_READ = 512 * 1024


def read_current(path: str) -> str | None:
    """The file's text if it exists and is small text; None otherwise (a new file, or not worth diffing)."""
    try:
        file = Path(path)
        if not file.is_file() or file.stat().st_size > MAX_READ:
            return None
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _clip_lines(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_LINES:
        return lines
    return [*lines[:MAX_LINES], f"… {len(lines) - MAX_LINES} more lines"]


def _diff(old: str, new: str) -> list[str]:
    """Changed lines with one line of context, without the file headers a phone has no room for."""
    out = []
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=1):
        if line.startswith(("---", "+++")):
            continue
        out.append("…" if line.startswith("@@") else line)
    return out[1:] if out and out[0] == "…" else out


def _edit(old: str, new: str) -> list[str]:
    return _diff(str(old or ""), str(new or ""))


def preview(tool: str, tool_input: dict[str, Any], read: Callable[[str], str | None] = read_current) -> str:
    """The body shown under "Claude wants to run …"; empty when the summary says it all."""
    i = tool_input or {}
    if tool == "Bash":
        command = str(i.get("command", ""))
        if len(command) <= 100 and "\n" not in command:
            return ""  # the summary line already holds all of it
        return command if len(command) <= MAX_COMMAND else command[:MAX_COMMAND] + "…"
    if tool == "Edit":
        lines = _edit(i.get("old_string", ""), i.get("new_string", ""))
        if i.get("replace_all"):
            lines.append("(every occurrence)")
        return "\n".join(_clip_lines(lines))
    if tool == "MultiEdit":
        lines = []
        for edit in i.get("edits") or []:
            if isinstance(edit, dict):
                if lines:
                    lines.append("…")
                lines += _edit(edit.get("old_string", ""), edit.get("new_string", ""))
        return "\n".join(_clip_lines(lines))
    if tool == "Write":
        content = str(i.get("content", ""))
        current = read(str(i.get("file_path", ""))) if i.get("file_path") else None
        if current is None:
            added = ["+" + line for line in content.splitlines()]
            lines = [f"(new file, {plural(len(added), 'line')})", *added]
        else:
            lines = _diff(current, content) or ["(no change)"]
        return "\n".join(_clip_lines(lines))
    return ""


def request_text(tool: str, summary: str, tool_input: dict[str, Any],
                 read: Callable[[str], str | None] = read_current) -> str:
    """What follows "Claude wants to run": the summary, and the preview when there is one (a long Bash
    command is shown once, whole, instead of clipped and then again)."""
    body = preview(tool, tool_input, read)
    if not body:
        return summary
    return f"Bash:\n{body}" if tool == "Bash" else f"{summary}\n{body}"
