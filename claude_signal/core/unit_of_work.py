"""Transactions that publish what they asked for: the one way a use case reaches the database.

Inside a transaction a use case asks for wake-ups (:func:`claude_signal.core.wakeups.wake`); the
:class:`TaskContext` that opened it commits, then hands them to its ``publish``. Tasks and the turn runner are
given a context explicitly, so the domain never imports Celery and no wake-up waits on a caller to remember
it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session as DB

from claude_signal.config import Settings
from claude_signal.core.wakeups import Wakeups, take_pending
from claude_signal.db.engine import unit_of_work

Publish = Callable[[Wakeups], None]


@dataclass(frozen=True)
class TaskContext:
    """What a use case needs from the process it runs in: its settings, its database and its broker."""

    settings: Settings
    engine: Callable[[], Engine]
    publish: Publish

    @contextmanager
    def transaction(self, *, read_only: bool = False, autocommit: bool = False) -> Iterator[DB]:
        """One unit of work; the wake-ups it asked for are published once it has committed (none if it
        failed). ``read_only`` takes no write lock on SQLite; ``autocommit``: see
        :func:`~claude_signal.db.engine.unit_of_work`."""
        with unit_of_work(self.engine(), read_only=read_only, autocommit=autocommit) as db:
            yield db
        wakeups = take_pending(db)
        if wakeups:
            self.publish(wakeups)
