"""One engine per process, SQLite tuned for many writers, and the unit-of-work helper.

SQLite: WAL so readers never block the writer, a busy timeout so writers queue instead of failing, foreign
keys on, and ``BEGIN IMMEDIATE`` so a transaction takes the write lock up front (a deferred one that reads
first and writes later can fail with "database is locked" no matter the timeout). A read-only unit of work
begins deferred: it never writes, so it never waits for the write lock nor holds up a writer.
PostgreSQL: a connect timeout, a statement timeout and TCP keepalives, so a blackholed server or network
fails a connection in seconds instead of stalling a heartbeat thread or a pool process for good; a pooled
connection that sat unused is pinged before use.
Prefork children inherit the parent's engine; :func:`get_engine` notices the new pid and starts afresh.
The engine of a process (:func:`get_engine`) lets units of work on the main thread keep their connection
between them (a pool process runs every task there): a checkout and a checkin cost more than a statement.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import Session

SQLITE_BUSY_TIMEOUT_MS = 15000
PING_IDLE_AFTER = 1.0  # seconds a pooled PostgreSQL connection may sit unused before it is pinged on checkout
_RETURNED_AT = "claude_signal_returned_at"

READ_ONLY = "claude_signal_read_only"  # execution option of the engine read-only units of work run on

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
        if connection.get_execution_options().get(READ_ONLY, False):
            connection.exec_driver_sql("BEGIN")
        else:
            take_write_lock(connection.connection.driver_connection)


def take_write_lock(raw: sqlite3.Connection, timeout: float = SQLITE_BUSY_TIMEOUT_MS / 1000) -> None:
    """``BEGIN IMMEDIATE``, polled rather than left to SQLite's busy handler: that one sleeps 1, 2, 5, 10 ms
    and more between tries, long past the moment a writer that holds the lock for a millisecond lets go,
    so two processes that write by turns spent a third of their time asleep with the lock free."""
    deadline = time.monotonic() + timeout
    pause = 0.0001
    raw.execute("PRAGMA busy_timeout=0")
    try:
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 1.5, 0.002)
    finally:
        raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


def postgres_connect_args(connect_timeout: float, statement_timeout: float) -> dict[str, object]:
    """libpq options: give up connecting, running a statement, or hearing from a silent peer."""
    statement_ms = int(statement_timeout * 1000)
    return {
        "connect_timeout": max(2, round(connect_timeout)),  # libpq's minimum is 2 s
        "options": f"-c statement_timeout={statement_ms}",
        "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
        "tcp_user_timeout": statement_ms + 10000,  # sent data unacknowledged this long: the peer is gone
    }


def _configured_timeouts() -> tuple[float, float]:
    from claude_signal.config import get_settings

    settings = get_settings()
    return settings.db_connect_timeout, settings.db_statement_timeout


def make_engine(url: str, *, connect_timeout: float | None = None, statement_timeout: float | None = None
                ) -> Engine:
    """A new engine for ``url``; creates the SQLite file's directory when needed.

    PostgreSQL timeouts default to the ``DB_CONNECT_TIMEOUT`` and ``DB_STATEMENT_TIMEOUT`` settings.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if connect_timeout is None or statement_timeout is None:
        configured = _configured_timeouts()
        connect_timeout = configured[0] if connect_timeout is None else connect_timeout
        statement_timeout = configured[1] if statement_timeout is None else statement_timeout
    postgres = parsed.get_backend_name() == "postgresql"  # libpq under psycopg: these are its options
    connect_args = postgres_connect_args(connect_timeout, statement_timeout) if postgres else {}
    engine = create_engine(url, pool_size=5, max_overflow=5, connect_args=connect_args)
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """SQLAlchemy's ``pool_pre_ping``, but only for a connection that sat in the pool a while: a ping is a
    round trip (two per command, one per transaction), while a connection put back a moment ago is as
    alive as a ping would find it. One that broke meanwhile fails its statement,
    and the pool is renewed then (the caller retries, as it must for a server that dies mid-transaction)."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection, record):  # type: ignore[no-untyped-def]
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection, record, _proxy):  # type: ignore[no-untyped-def]
        returned = record.info.get(_RETURNED_AT)
        if returned is None or time.monotonic() - returned < PING_IDLE_AFTER:
            return  # new, or back in the pool only a moment
        if not _answers_ping(engine, dbapi_connection):
            raise InvalidatePoolError()  # the pool drops every older connection, then retries


def _answers_ping(engine: Engine, dbapi_connection: Any) -> bool:
    """False when the server is gone (the connection is dead); other errors are raised."""
    dialect = engine.dialect
    try:
        dialect.do_ping(dbapi_connection)
    except dialect.loaded_dbapi.Error as error:
        if dialect.is_disconnect(error, dbapi_connection, None):
            return False
        raise
    return True


def get_engine(url: str) -> Engine:
    """The engine for ``url`` in this process; a forked child never reuses its parent's connections."""
    pid = os.getpid()
    cached = _engines.get(url)
    if cached is not None:
        owner_pid, engine = cached
        if owner_pid == pid:
            return engine
        engine.dispose(close=False)
    engine = keep_connections(make_engine(url))
    _engines[url] = (pid, engine)
    return engine


def dispose_all() -> None:
    """Drop every cached engine (tests, shutdown)."""
    for pid, engine in _engines.values():
        kept = engine.__dict__.get(_KEPT)
        if kept is not None and pid == os.getpid():
            kept.close()
        engine.dispose()
    _engines.clear()


def _reader(engine: Engine) -> Engine:
    """``engine`` (the same pool) with the option that makes SQLite begin deferred."""
    found: Engine | None = engine.__dict__.get("_claude_signal_reader")
    if found is None:
        found = engine.__dict__["_claude_signal_reader"] = engine.execution_options(**{READ_ONLY: True})
    return found


def _autocommitter(engine: Engine) -> Engine:
    """``engine`` (the same pool) whose PostgreSQL connections commit each statement by itself."""
    found: Engine | None = engine.__dict__.get("_claude_signal_autocommit")
    if found is None:
        found = engine.__dict__["_claude_signal_autocommit"] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return found


@contextmanager
def unit_of_work(engine: Engine, *, read_only: bool = False, autocommit: bool = False) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error. ``read_only`` promises no writes: on
    SQLite it then takes no write lock (so only pure reads may ask for it: a write there could fail with
    "database is locked" instead of waiting its turn).

    ``autocommit`` promises statements that need no transaction around them (each a whole compare-and-set,
    or a read): PostgreSQL then commits each by itself, which spares the BEGIN and COMMIT round trips of a
    short unit. SQLite keeps the transaction, since a lone write there would wait for the lock in SQLite's
    busy handler instead of :func:`take_write_lock`."""
    if autocommit and engine.dialect.name == "postgresql":
        bind = _autocommitter(engine)
    else:
        bind = _reader(engine) if read_only else engine
    kept = _kept_connections(engine)
    if kept is None:
        with Session(bind, expire_on_commit=False) as db, db.begin():
            yield db
        return
    connection = kept.take(bind)
    try:
        with Session(connection, expire_on_commit=False) as db, db.begin():
            yield db
    finally:
        kept.give_back(bind, connection)


class _KeptConnections:
    """One connection per kind of unit of work (read-write, read-only, autocommit), held by the process's
    main thread between its units of work instead of going back to the pool after each.

    A prefork pool process runs every task on its main thread, one at a time, and a message costs it two
    units of work: a checkout and a checkin from SQLAlchemy's pool (with their events and resets) cost
    more than a statement. A connection kept idle longer than :data:`PING_IDLE_AFTER` is pinged before
    reuse, as the pool would; a broken one is replaced; other threads (the heartbeat, the turn plane's
    threads) use the pool as before."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.held: dict[int, tuple[Connection, float]] = {}

    def take(self, bind: Engine) -> Connection:
        held = self.held.pop(id(bind), None)  # popped: a unit of work opened inside another gets its own
        if held is not None:
            connection, since = held
            if not connection.invalidated and self._alive(bind, connection, since):
                return connection
            connection.close()
        return bind.connect()

    def give_back(self, bind: Engine, connection: Connection) -> None:
        if connection.invalidated or connection.in_transaction() or id(bind) in self.held:
            connection.close()
        else:
            self.held[id(bind)] = (connection, time.monotonic())

    @staticmethod
    def _alive(bind: Engine, connection: Connection, since: float) -> bool:
        if bind.dialect.name != "postgresql" or time.monotonic() - since < PING_IDLE_AFTER:
            return True
        if _answers_ping(bind, connection.connection.dbapi_connection):
            return True
        connection.invalidate()
        return False

    def close(self) -> None:
        for connection, _since in self.held.values():
            connection.close()
        self.held.clear()


_KEPT = "_claude_signal_kept_connections"  # engine.__dict__: its _KeptConnections, when it keeps them


def keep_connections(engine: Engine) -> Engine:
    """Let ``engine``'s units of work on the main thread keep their connections (see _KeptConnections)."""
    engine.__dict__[_KEPT] = _KeptConnections()
    return engine


def _kept_connections(engine: Engine) -> _KeptConnections | None:
    kept: _KeptConnections | None = engine.__dict__.get(_KEPT)
    if kept is None or kept.pid != os.getpid() or threading.current_thread() is not threading.main_thread():
        return None
    return kept
