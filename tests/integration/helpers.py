"""Small queries the end-to-end tests share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import Engine, func, select, text

from claude_signal.db.engine import unit_of_work
from claude_signal.db.models import Outbox, Session, Transition, Turn


def sessions(engine: Engine) -> list[Session]:
    with unit_of_work(engine) as db:
        return list(db.execute(select(Session).order_by(Session.created_at)).scalars())


def one_session(engine: Engine) -> Session:
    (session,) = sessions(engine)
    return session


def turns(engine: Engine) -> list[Turn]:
    with unit_of_work(engine) as db:
        return list(db.execute(select(Turn).order_by(Turn.id)).scalars())


def count(engine: Engine, model: type) -> int:
    with unit_of_work(engine) as db:
        return db.execute(select(func.count()).select_from(model)).scalar_one()


def transitions(engine: Engine, session_id: str) -> list[tuple[str, str]]:
    with unit_of_work(engine) as db:
        rows = db.execute(select(Transition.from_status, Transition.to_status)
                          .where(Transition.session_id == session_id).order_by(Transition.id)).all()
        return [tuple(r) for r in rows]


def outbox_texts(engine: Engine) -> list[str]:
    with unit_of_work(engine) as db:
        return list(db.execute(select(Outbox.text).order_by(Outbox.id)).scalars())


@contextlib.contextmanager
def database_write_lock(engine: Engine) -> Iterator[None]:
    """Hold a lock that makes every writer wait: a stand-in for a slow database at the worst moment."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("SELECT 1"))  # our engine begins every transaction with BEGIN IMMEDIATE
        else:
            conn.execute(text("LOCK TABLE inbox IN SHARE MODE"))  # blocks inserts, not reads
        try:
            yield
        finally:
            conn.rollback()


def unacked_task_ids(client) -> set[str]:  # type: ignore[no-untyped-def]
    """Task ids of messages a worker has taken but not acknowledged (kombu's Redis ``unacked`` hash)."""
    import json

    ids = set()
    for raw in client.hvals("unacked"):
        payload = json.loads(raw)[0]
        ids.add(payload.get("headers", {}).get("id"))
    return ids
