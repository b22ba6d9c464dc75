"""Plain words for the phone: one-line tool summaries, error texts that say what to do, the cost line."""

from __future__ import annotations

import json
import re
from typing import Any

from claude_signal.claude.protocol import Result

LIMIT = 120


def _clip(text: str, limit: int = LIMIT) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tool_summary(name: str, tool_input: dict[str, Any]) -> str:
    """``Bash: pytest -q``, ``Edit src/app.py``: what a person needs to recognise the action."""
    i = tool_input or {}
    if name == "Bash":
        return _clip(f"Bash: {i.get('command', '')}")
    if name in ("Edit", "MultiEdit", "Write", "Read", "NotebookEdit"):
        return _clip(f"{name} {i.get('file_path') or i.get('notebook_path') or ''}".strip())
    if name == "Grep":
        where = f" in {i['path']}" if i.get("path") else ""
        return _clip(f'Grep "{i.get("pattern", "")}"{where}')
    if name == "Glob":
        return _clip(f"Glob {i.get('pattern', '')}")
    if name in ("WebFetch", "WebSearch"):
        return _clip(f"{name} {i.get('url') or i.get('query') or ''}".strip())
    if name in ("Task", "Agent"):
        return _clip(f"{name}: {i.get('description') or i.get('prompt') or ''}")
    compact = json.dumps(i, ensure_ascii=False, separators=(",", ":")) if i else ""
    return _clip(f"{name} {compact}".strip())


def result_error_text(result: Result) -> str:
    """An ``is_error`` result in plain language, with the next step; never raw JSON."""
    detail = " ".join([result.result_text or "", *result.errors]).strip()
    low = detail.lower()
    if "not logged in" in low or "/login" in low:
        return "Claude is not logged in on this machine: run `claude` there once and use /login, then try again."
    if "invalid api key" in low:
        return "Claude's API key on this machine is invalid: fix ANTHROPIC_API_KEY there, then try again."
    if "no conversation found" in low:
        return ("Claude's transcript of this conversation is not on this host, so it cannot be continued. "
                "Start a new session with /session start <path>.")
    if result.api_error_status == 404 or "model_not_found" in low or ("not_found_error" in low and "model" in low):
        return ("Claude does not know the model this session asks for. /model <name> picks another (sonnet, opus, "
                "haiku or a full id), /model default goes back to Claude Code's; then send your message again.")
    if result.subtype == "error_max_turns":
        return "Claude reached its limit of steps for one message. Send a follow-up to let it continue."
    if result.subtype == "error_max_budget_usd":
        return "Claude reached the spending limit for this message. Send a follow-up if you want it to go on."
    overloaded = "Anthropic's servers are overloaded right now. Send your message again in a few minutes."
    if result.api_error_status == 529:
        return overloaded
    if (result.api_error_status == 429 or "session limit" in low or "usage limit" in low or "rate limit" in low
            or _status_in(429, low)):
        return "Claude's usage limit is reached for now. Try again later; /status shows the session."
    if "overloaded" in low or _status_in(529, low):
        return overloaded
    first = detail.splitlines()[0] if detail else "unknown error"
    return f"Claude stopped with an error: {_clip(first, 200)}. Send your message again, or /status."


def _status_in(status: int, text: str) -> bool:
    """An HTTP status named as such ("(429)", "529 Overloaded"), not digits inside a port or an id."""
    return re.search(rf"(?<![\w:.]){status}(?![\w.:])", text) is not None


def format_cost_line(duration_ms: int, cost_usd: float) -> str:
    return f"Done in {duration_ms / 1000:.1f}s · ${cost_usd:.4f}"
