"""One engine per process, SQLite tuned for many writers, and the unit-of-work helper.

SQLite: WAL so readers never block the writer, a busy timeout so writers queue instead of failing, foreign
keys on, and ``BEGIN IMMEDIATE`` so a transaction takes the write lock up front (a deferred one that reads
first and writes later can fail with "database is locked" no matter the timeout).
Prefork children inherit the parent's engine; :func:`get_engine` notices the new pid and starts afresh.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

SQLITE_BUSY_TIMEOUT_MS = 15000

_engines: dict[str, tuple[int, Engine]] = {}


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):  # type: ignore[no-untyped-def]
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """A new engine for ``url``; creates the SQLite file's directory when needed."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def get_engine(url: str) -> Engine:
    """The engine for ``url`` in this process; a forked child never reuses its parent's connections."""
    pid = os.getpid()
    cached = _engines.get(url)
    if cached is not None:
        owner_pid, engine = cached
        if owner_pid == pid:
            return engine
        engine.dispose(close=False)
    engine = make_engine(url)
    _engines[url] = (pid, engine)
    return engine


def dispose_all() -> None:
    """Drop every cached engine (tests, shutdown)."""
    for _pid, engine in _engines.values():
        engine.dispose()
    _engines.clear()


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    with Session(engine, expire_on_commit=False) as db, db.begin():
        yield db
