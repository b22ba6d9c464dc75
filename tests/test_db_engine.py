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
from sqlalchemy.exc import DBAPIError

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


# ------------------------------------------------------------------ connections kept by the main thread


def _backend(db) -> object:  # type: ignore[no-untyped-def]
    """What identifies the connection a unit of work runs on: the server process, or SQLite's handle."""
    if db.get_bind().dialect.name == "postgresql":
        return db.execute(text("SELECT pg_backend_pid()")).scalar_one()
    return id(db.connection().connection.driver_connection)


def _checkouts(engine: Engine) -> list[int]:
    seen: list[int] = []
    from sqlalchemy import event

    event.listen(engine, "checkout", lambda *_a: seen.append(1))
    return seen


def test_the_main_thread_keeps_its_connection_between_units_of_work(database_url: str) -> None:
    """A pool process runs its tasks on its main thread: its units of work reuse one connection per kind
    (read-write, read-only, autocommit) instead of a checkout and a checkin each; what one unit rolled back
    stays rolled back for the next."""
    engine = engines.keep_connections(make_engine(database_url))
    checkouts = _checkouts(engine)
    try:
        with unit_of_work(engine) as db:
            db.execute(text("CREATE TABLE kept (id INTEGER PRIMARY KEY)"))
            first = _backend(db)
        with pytest.raises(RuntimeError), unit_of_work(engine) as db:
            db.execute(text("INSERT INTO kept VALUES (1)"))
            raise RuntimeError("the task failed")
        with unit_of_work(engine) as db:
            assert _backend(db) == first
            assert db.execute(text("SELECT count(*) FROM kept")).scalar_one() == 0
        with unit_of_work(engine, autocommit=True) as db:
            db.execute(text("INSERT INTO kept VALUES (2)"))
        with unit_of_work(engine, read_only=True) as db, unit_of_work(engine, read_only=True) as inner:
            assert _backend(inner) != _backend(db), "a unit opened inside another has a connection of its own"
        with unit_of_work(engine, read_only=True) as db:
            assert db.execute(text("SELECT id FROM kept")).scalars().all() == [2]
        kinds = 3 if engine.dialect.name == "postgresql" else 2  # SQLite has no autocommit units
        assert len(checkouts) == kinds + 1, "one checkout per kind of unit, and one for the unit inside another"
        with unit_of_work(engine) as db:
            assert _backend(db) == first
            db.execute(text("DROP TABLE kept"))
    finally:
        engines._kept_connections(engine).close()  # type: ignore[union-attr]
        engine.dispose()


def test_other_threads_take_their_connections_from_the_pool(database_url: str) -> None:
    engine = engines.keep_connections(make_engine(database_url))
    checkouts = _checkouts(engine)

    def units() -> None:
        for _ in range(3):
            with unit_of_work(engine) as db:
                db.execute(text("SELECT 1"))

    worker = threading.Thread(target=units)
    worker.start()
    worker.join()
    assert len(checkouts) == 3
    engine.dispose()


def test_a_kept_connection_the_server_dropped_is_replaced(pg_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Idle a while, it is pinged first, as the pool would (no error); dropped while busy, the one unit
    that meets it fails (the task retries) and the next one connects afresh."""
    monkeypatch.setattr(engines, "PING_IDLE_AFTER", 0.2)
    engine = engines.keep_connections(make_engine(pg_database, connect_timeout=5, statement_timeout=5))
    pings = _pings(engine, monkeypatch)
    try:
        with unit_of_work(engine) as db:
            backend = _backend(db)
        _terminate(backend)
        time.sleep(0.3)
        with unit_of_work(engine) as db:
            replaced = _backend(db)
        assert replaced != backend and len(pings) == 1
        monkeypatch.setattr(engines, "PING_IDLE_AFTER", 60.0)
        _terminate(replaced)
        with pytest.raises(DBAPIError) as failed, unit_of_work(engine) as db:
            _backend(db)
        assert failed.value.connection_invalidated
        with unit_of_work(engine) as db:
            assert _backend(db) not in (backend, replaced)
    finally:
        engines._kept_connections(engine).close()  # type: ignore[union-attr]
        engine.dispose()


def test_a_forked_child_never_uses_its_parents_kept_connection(pg_database: str) -> None:
    """Prefork: a pool process starts as a copy of its parent, engine and kept connections included; using
    the parent's socket would mix two processes' statements in one session."""
    import gc
    import os

    with unit_of_work(engines.get_engine(pg_database)) as db:
        parent = _backend(db)
    held_across_the_fork = engines.get_engine(pg_database)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its backends, then leave without running the parent's cleanup
        try:
            with unit_of_work(held_across_the_fork) as db:
                first = _backend(db)
            with unit_of_work(engines.get_engine(pg_database)) as db:
                second = _backend(db)
            del held_across_the_fork
            gc.collect()  # the parent's engine, replaced in this process, is garbage now: harmless
            os.write(write, f"{first} {second}".encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    seen = os.read(read, 64).decode().split()
    os.close(read)
    assert len(seen) == 2 and parent not in {int(b) for b in seen}
    with unit_of_work(engines.get_engine(pg_database)) as db:  # the parent's connection is its own, and alive
        assert _backend(db) == parent
    engines.dispose_all()
