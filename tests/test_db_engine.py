"""How transactions get their connection: SQLite's write lock taken as soon as it is free (and given up on
after the timeout, as SQLite's own handler would), and a PostgreSQL connection pinged only after it sat
idle, so a server that dropped it costs no error while a busy connection costs no round trip."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from claude_signal.db import engine as engines
from claude_signal.db.engine import make_engine, take_write_lock, unit_of_work
from claude_signal.db.migrate import upgrade
from tests.conftest import PG_ADMIN_URL


def test_a_writer_waits_for_the_lock_then_takes_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    upgrade(url)
    holder = sqlite3.connect(tmp_path / "w.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    released = threading.Event()

    def release() -> None:
        time.sleep(0.3)
        released.set()  # before the COMMIT: the waiter can have the lock only after it
        holder.execute("COMMIT")

    threading.Thread(target=release).start()
    engine = make_engine(url)
    with unit_of_work(engine) as db:  # its first statement begins it: waits for the holder, then writes
        db.execute(text("CREATE TABLE took_the_lock (x INTEGER)"))
        assert released.is_set()
        timeout = db.connection().exec_driver_sql("PRAGMA busy_timeout").scalar()
    assert timeout == engines.SQLITE_BUSY_TIMEOUT_MS, "the connection keeps its busy timeout for reads"
    engine.dispose()
    holder.close()


def test_a_lock_held_past_the_timeout_fails_as_sqlite_would(tmp_path: Path) -> None:
    path = tmp_path / "held.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("BEGIN IMMEDIATE")
    waiter = sqlite3.connect(path, isolation_level=None)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        take_write_lock(waiter, timeout=0.3)
    assert time.monotonic() - started >= 0.3
    holder.execute("COMMIT")
    take_write_lock(waiter, timeout=0.3)  # free now: taken at once
    waiter.execute("COMMIT")
    holder.close()
    waiter.close()


def _terminate(backend_pid: int) -> None:
    admin = make_url(PG_ADMIN_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", [backend_pid])


def _pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The pings the pool sends on checkout, as they go."""
    seen: list[object] = []
    real = engine.dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        seen.append(dbapi_connection)
        return real(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return seen


def test_an_idle_connection_the_server_dropped_is_replaced_unseen(pg_database: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines, "PING_IDLE_AFTER", 0.2)
    engine = make_engine(pg_database, connect_timeout=5, statement_timeout=5)
    pings = _pings(engine, monkeypatch)
    with unit_of_work(engine) as db:
        backend = db.execute(text("SELECT pg_backend_pid()")).scalar_one()
    _terminate(backend)  # PostgreSQL restarted, or an idle timeout closed it
    time.sleep(0.3)
    with unit_of_work(engine) as db:  # no error: the ping found it dead and the pool connected afresh
        assert db.execute(text("SELECT pg_backend_pid()")).scalar_one() != backend
    assert len(pings) == 1
    engine.dispose()


def test_a_connection_back_a_moment_ago_is_not_pinged(pg_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines, "PING_IDLE_AFTER", 60.0)
    engine = make_engine(pg_database, connect_timeout=5, statement_timeout=5)
    pings = _pings(engine, monkeypatch)
    for _ in range(5):
        with unit_of_work(engine) as db:
            db.execute(text("SELECT 2"))
    assert pings == []
    monkeypatch.setattr(engines, "PING_IDLE_AFTER", 0.0)
    with unit_of_work(engine) as db:
        db.execute(text("SELECT 2"))
    assert len(pings) == 1, "a connection idle past PING_IDLE_AFTER is pinged"
    engine.dispose()


def test_an_autocommit_unit_commits_each_statement_alone_on_postgresql(pg_database: str) -> None:
    """No BEGIN and no COMMIT around it: each statement is its own transaction (one that fails leaves the
    one before it done), and the connection goes back to the pool transactional again."""
    engine = make_engine(pg_database, connect_timeout=5, statement_timeout=5)
    with unit_of_work(engine) as db:
        db.execute(text("CREATE TABLE marks (id INTEGER PRIMARY KEY)"))
    sent: list[str] = []
    from sqlalchemy import event

    try:
        event.listen(engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
        with pytest.raises(Exception, match="duplicate key"), unit_of_work(engine, autocommit=True) as db:
            assert db.connection().connection.driver_connection.autocommit
            db.execute(text("INSERT INTO marks VALUES (1)"))
            db.execute(text("INSERT INTO marks VALUES (1)"))
        with unit_of_work(engine) as db:
            assert not db.connection().connection.driver_connection.autocommit
            assert db.execute(text("SELECT count(*) FROM marks")).scalar_one() == 1  # the first one stayed
        assert sent == ["INSERT INTO marks VALUES (1)"] * 2 + ["SELECT count(*) FROM marks"]
    finally:  # the database is shared with the other tests of this worker
        with unit_of_work(engine) as db:
            db.execute(text("DROP TABLE marks"))
        engine.dispose()


def test_an_autocommit_unit_is_one_transaction_on_sqlite(tmp_path: Path) -> None:
    """SQLite keeps its transaction (its lone writes would wait in the busy handler, not for the polled lock)."""
    url = f"sqlite:///{tmp_path / 'a.db'}"
    engine = make_engine(url)
    with unit_of_work(engine) as db:
        db.execute(text("CREATE TABLE marks (id INTEGER PRIMARY KEY)"))
    with pytest.raises(Exception, match="UNIQUE"), unit_of_work(engine, autocommit=True) as db:
        db.execute(text("INSERT INTO marks VALUES (1)"))
        db.execute(text("INSERT INTO marks VALUES (1)"))
    with unit_of_work(engine) as db:
        assert db.execute(text("SELECT count(*) FROM marks")).scalar_one() == 0
    engine.dispose()
