"""Process-wide glue for tasks: settings, the database transaction, this worker's identity, publishing.

Tasks stay thin by leaning on these four; none of them holds a business rule.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from celery import Celery
from sqlalchemy.orm import Session as DB

from claude_signal.config import Settings, get_settings
from claude_signal.db.engine import get_engine, unit_of_work
from claude_signal.wakeups import Wakeups
from claude_signal.workers import Identity

log = logging.getLogger(__name__)

_identity: Identity | None = None


def settings() -> Settings:
    return get_settings()


@contextmanager
def transaction(*, read_only: bool = False) -> Iterator[DB]:
    """One unit of work on this process's engine; ``read_only`` for pure reads (no write lock on SQLite)."""
    with unit_of_work(get_engine(settings().sqlalchemy_url), read_only=read_only) as db:
        yield db


def set_identity(identity: Identity) -> None:
    global _identity
    _identity = identity


def identity(node: str | None = None) -> Identity:
    """This worker's identity; a process that never ran the worker hooks (tests, scripts) gets a stand-in."""
    if _identity is not None:
        return _identity
    from claude_signal.ids import new_incarnation

    set_identity(Identity(node=node or f"adhoc@{settings().host}", host=settings().host,
                          incarnation=new_incarnation()))
    assert _identity is not None
    return _identity


def publish(app: Celery, wakeups: Wakeups) -> None:
    """Send the wake-ups a committed transaction asked for. A failure here loses nothing: every wake-up
    points at a row the recovery sweep finds again, so it is logged, not raised."""
    for w in wakeups:
        try:
            app.send_task(w.task, args=list(w.args), queue=w.queue, routing_key=w.queue, task_id=w.task_id,
                          countdown=w.countdown)
        except Exception as error:  # noqa: BLE001 - logged; must not propagate
            log.warning("could not publish %s%s (the sweep will retry): %s", w.task, w.args, error)
