"""The task context of this worker process: settings, transactions that publish after commit, identity.

Built once per process (:func:`context`) and handed explicitly to the use cases that need one; tasks stay
thin by leaning on it, and none of it holds a business rule.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from celery import Celery
from sqlalchemy.orm import Session as DB

from claude_signal.config import Settings, get_settings
from claude_signal.core.liveness import Identity
from claude_signal.core.unit_of_work import TaskContext
from claude_signal.core.wakeups import Wakeups
from claude_signal.db.engine import get_engine

log = logging.getLogger(__name__)

_identity: Identity | None = None
_app: Celery | None = None


def bind(app: Celery) -> None:
    """Publish this process's wake-ups through ``app`` (called once, where the app is made)."""
    global _app
    _app = app


def settings() -> Settings:
    return get_settings()


def context() -> TaskContext:
    """This process's task context; its transactions publish through the app :func:`bind` was given."""
    return TaskContext(settings=settings(), engine=lambda: get_engine(settings().sqlalchemy_url),
                       publish=_publish_bound)


def _publish_bound(wakeups: Wakeups) -> None:
    if _app is None:
        raise RuntimeError("no Celery app to publish with: import claude_signal.celery first")
    publish(_app, wakeups)


@contextmanager
def transaction(*, read_only: bool = False) -> Iterator[DB]:
    """One unit of work of :func:`context`: its wake-ups are published after it commits."""
    with context().transaction(read_only=read_only) as db:
        yield db


def set_identity(identity: Identity) -> None:
    global _identity
    _identity = identity


def identity(node: str | None = None) -> Identity:
    """This worker's identity; a process that never ran the worker hooks (tests, scripts) gets a stand-in."""
    if _identity is not None:
        return _identity
    from claude_signal.rules.ids import new_incarnation

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
