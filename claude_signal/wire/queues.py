"""Queue and task names: the contract between whoever publishes a Celery message and the worker that takes it.

Tasks are published by name (the listener imports no task module), so these strings are the interface.
"""

from __future__ import annotations

SHARED_QUEUE = "shared"
# Outbound Signal traffic (replies, typing indicators) is consumed only where signal-cli-rest-api can be
# reached (CLAUDE_SIGNAL_SIGNAL_SENDER), so the other machines need only the broker and the database.
SIGNAL_QUEUE = "signal"

OUTBOX_SEND = "outbox.send"
SESSION_START = "session.start"
SESSION_RESUME = "session.resume"
SESSION_PROMPT = "session.prompt"
SESSION_GET_FILE = "session.get_file"
RECOVERY_RUN = "recovery.run"
SIGNAL_TYPING = "signal.typing"


def host_queue(host: str) -> str:
    """The control queue only workers on ``host`` consume: short work that needs that machine's files or
    processes (starting and resuming sessions there, /get, recovery)."""
    return f"host.{host}"


def turn_queue(host: str) -> str:
    """The turn plane's queue on ``host``: Claude turns, consumed by that host's turn worker alone, so a
    long turn never holds up a command, a reply or a recovery."""
    return f"turns.{host}"
