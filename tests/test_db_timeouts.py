"""PostgreSQL connections give up instead of hanging: on connect, and on a statement that runs too long."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from claude_signal.db.engine import make_engine


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port whose kernel completes the TCP handshake but where nobody ever answers (a hung server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.mark.timeout(60)
def test_connect_gives_up_on_a_server_that_never_answers(silent_server: int) -> None:
    engine = make_engine(f"postgresql://nobody@127.0.0.1:{silent_server}/db", connect_timeout=2,
                         statement_timeout=5)
    with pytest.raises(OperationalError, match="timeout"):
        engine.connect()
    engine.dispose()


@pytest.mark.timeout(60)
def test_statement_timeout_ends_a_long_statement(pg_database: str) -> None:
    engine = make_engine(pg_database, connect_timeout=5, statement_timeout=0.5)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "500ms"
            with pytest.raises(OperationalError, match="statement timeout"):
                conn.execute(text("SELECT pg_sleep(30)"))
    finally:
        engine.dispose()


def test_defaults_come_from_the_settings(pg_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from claude_signal.config import get_settings

    monkeypatch.setenv("CLAUDE_SIGNAL_DB_STATEMENT_TIMEOUT", "7")
    get_settings.cache_clear()
    try:
        engine = make_engine(pg_database)
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "7s"
        engine.dispose()
    finally:
        get_settings.cache_clear()
