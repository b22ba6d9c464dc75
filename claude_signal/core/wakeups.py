"""Celery messages a domain operation asks for once its transaction has committed.

The domain never talks to the broker: it asks its transaction for a wake-up (:func:`wake`), and the unit of
work that opened the transaction publishes them all after the commit (:mod:`claude_signal.core.unit_of_work`),
so none can be forgotten and none leaves before the change it announces. A message lost between commit and
publish is found again from the database (redelivery of the inbound task, or the recovery sweep), because
every wake-up points at a row that says it is due.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session as DB

from claude_signal.wire.queues import OUTBOX_SEND, SESSION_PROMPT, SHARED_QUEUE, SIGNAL_QUEUE, turn_queue


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


_PENDING = "claude_signal.core.wakeups"


def pending(db: DB) -> Wakeups:
    """The wake-ups asked for in ``db``'s transaction so far (published after it commits)."""
    wakeups = db.info.get(_PENDING)
    if wakeups is None:
        wakeups = db.info[_PENDING] = Wakeups()
    return wakeups


def take_pending(db: DB) -> Wakeups:
    """Hand over (and forget) what ``db``'s transaction asked for: the unit of work calls it after commit."""
    return db.info.pop(_PENDING, None) or Wakeups()


def wake(db: DB, wakeup: Wakeup) -> None:
    """Ask for ``wakeup`` once this transaction commits."""
    pending(db).add(wakeup)


def wake_sender(db: DB, outbox_id: int) -> None:
    """Ask for the reply ``outbox_id`` to be sent once this transaction commits."""
    pending(db).send_reply(outbox_id)
