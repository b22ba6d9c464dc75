"""Celery messages a domain operation asks for once its transaction has committed.

The domain never talks to the broker: it returns :class:`Wakeup` values, and the task layer publishes them
after the commit. A message lost between commit and publish is found again from the database (redelivery
of the inbound task, or the recovery sweep), because every wake-up points at a row that says it is due.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


@dataclass(frozen=True)
class Wakeup:
    task: str
    args: tuple[Any, ...]
    queue: str = SHARED_QUEUE
    task_id: str | None = None
    countdown: float | None = None


def next_turn(session_id: str, host: str) -> Wakeup:
    """Ask the session's host to run its next queued turn (a no-op when one runs or none waits)."""
    return Wakeup(SESSION_PROMPT, (session_id,), queue=turn_queue(host))


def _identity(wakeup: Wakeup) -> object:
    """What makes two wake-ups the same, hashable even when an argument is a dict (an inbound message)."""
    try:
        hash(wakeup)
    except TypeError:
        return (wakeup.task, repr(wakeup.args), wakeup.queue, wakeup.task_id, wakeup.countdown)
    return wakeup


@dataclass
class Wakeups:
    """Wake-ups in the order they were asked for, each once; adding is constant time (a recovery asks for
    thousands)."""

    items: list[Wakeup] = field(default_factory=list)
    _seen: set[object] = field(default_factory=set, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        given, self.items = self.items, []
        for item in given:
            self.add(item)

    def add(self, wakeup: Wakeup) -> None:
        key = _identity(wakeup)
        if key not in self._seen:
            self._seen.add(key)
            self.items.append(wakeup)

    def discard(self, wakeup: Wakeup) -> None:
        """Forget ``wakeup`` (its work was done another way)."""
        key = _identity(wakeup)
        if key in self._seen:
            self._seen.discard(key)
            self.items.remove(wakeup)

    def send_reply(self, outbox_id: int) -> None:
        self.add(Wakeup(OUTBOX_SEND, (outbox_id,), queue=SIGNAL_QUEUE, task_id=f"outbox:{outbox_id}"))

    def extend(self, other: Wakeups) -> None:
        for item in other.items:
            self.add(item)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)
