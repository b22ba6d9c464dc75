"""The database's clock without a statement per transaction: SQLite's read as SQLite reads it, PostgreSQL's
read once and then told by elapsed time, asked again when that reading is old; the same answer as asking."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, event

from claude_signal.db import clock
from claude_signal.db.engine import unit_of_work


@pytest.fixture
def clock_reads(engine: Engine) -> Iterator[list[str]]:
    """The statements that read the database's clock, as the engine runs them."""
    reads: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if "strftime" in statement or "clock_timestamp" in statement:
            reads.append(statement)

    clock._anchors.clear()
    event.listen(engine, "before_cursor_execute", seen)
    yield reads
    event.remove(engine, "before_cursor_execute", seen)
    clock._anchors.clear()


def test_the_clock_is_read_once_and_agrees_with_asking(engine: Engine, clock_reads: list[str]) -> None:
    for _ in range(20):
        with unit_of_work(engine) as db:
            told = clock.tx_now(db)
            asked = clock.read_db_clock(db)
        assert abs(asked - told) < timedelta(milliseconds=50)
    anchor = 0 if engine.dialect.name == "sqlite" else clock.ANCHOR_READS
    assert len(clock_reads) == anchor + 20  # then only the comparisons' own reads


def test_time_moves_on_between_transactions(engine: Engine, clock_reads: list[str]) -> None:
    with unit_of_work(engine) as db:
        first = clock.tx_now(db)
        assert clock.tx_now(db) == first  # one now per transaction
    with unit_of_work(engine) as db:
        assert clock.tx_now(db) > first


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_old_reading_or_a_wall_clock_jump_reads_again(engine: Engine, clock_reads: list[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def anchors() -> int:
        return len(clock_reads) // clock.ANCHOR_READS

    with unit_of_work(engine) as db:
        clock.db_now(db)
        clock.db_now(db)
    assert anchors() == 1
    real_elapsed = clock._elapsed
    monkeypatch.setattr(clock, "_elapsed", lambda: real_elapsed() + clock.REANCHOR_AFTER + 1)
    with unit_of_work(engine) as db:
        clock.db_now(db)
    assert anchors() == 2, "a reading older than REANCHOR_AFTER is replaced"
    monkeypatch.setattr(clock, "_elapsed", real_elapsed)
    with unit_of_work(engine) as db:
        clock.db_now(db)  # elapsed went back: not to be trusted either
    assert anchors() == 3
    real_wall = clock.time.time
    monkeypatch.setattr(clock.time, "time", lambda: real_wall() + 5)
    with unit_of_work(engine) as db:
        clock.db_now(db)
    assert anchors() == 4, "the wall clock moved otherwise than time elapsed (a suspended machine woke)"


def test_a_reply_due_now_is_due_for_a_sender_whose_reading_is_a_moment_behind(engine: Engine) -> None:
    """Each process tells the time from its own reading: a reply written due at once by one must be due for
    another whose reading is a little behind (the sender then left it for the sweep, 30 s later)."""
    from claude_signal.core import outbox

    with unit_of_work(engine) as db:
        written = clock.tx_now(db)
        oid = outbox.enqueue(db, recipient="alice", text="hi", dedupe_key="k1")
    behind = written - timedelta(milliseconds=200)
    with unit_of_work(engine) as db:
        assert outbox.due_head(db, "alice", now=behind) == oid  # what a sender leaving the lane asks
        claimed = outbox.claim_next_for(db, "alice", now=behind)  # what outbox.send claims with
        assert claimed is not None and claimed.id == oid
