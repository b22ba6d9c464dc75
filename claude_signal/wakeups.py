"""Celery messages a domain operation asks for once its transaction has committed.

The domain never talks to the broker: it returns :class:`Wakeup` values, and the task layer publishes them
after the commit. A message lost between commit and publish is found again from the database (redelivery
of the inbound task, or the recovery sweep), because every wake-up points at a row that says it is due.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SHARED_QUEUE = "shared"

OUTBOX_SEND = "outbox.send"
SESSION_START = "session.start"
SESSION_RESUME = "session.resume"
SESSION_PROMPT = "session.prompt"
RECOVERY_RUN = "recovery.run"


def host_queue(host: str) -> str:
    """The queue only workers on ``host`` consume: work that needs that machine's files or processes."""
    return f"host.{host}"


@dataclass(frozen=True)
class Wakeup:
    task: str
    args: tuple[Any, ...]
    queue: str = SHARED_QUEUE
    task_id: str | None = None
    countdown: float | None = None


@dataclass
class Wakeups:
    items: list[Wakeup] = field(default_factory=list)

    def add(self, wakeup: Wakeup) -> None:
        if wakeup not in self.items:
            self.items.append(wakeup)

    def send_reply(self, outbox_id: int) -> None:
        self.add(Wakeup(OUTBOX_SEND, (outbox_id,), task_id=f"outbox:{outbox_id}"))

    def extend(self, other: Wakeups) -> None:
        for item in other.items:
            self.add(item)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)
