"""Replies are claimed by one sender at a time, retried with backoff, and given up only when final."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, update

from claude_signal import outbox
from claude_signal.db.engine import unit_of_work
from claude_signal.db.models import Outbox, OutboxStatus, utcnow


def add(engine: Engine, key: str = "k1") -> int:
    with unit_of_work(engine) as db:
        return outbox.enqueue(db, recipient="alice", text="hi", dedupe_key=key)


def test_backoff_doubles_and_caps() -> None:
    assert [outbox.backoff(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert outbox.backoff(30) == outbox.BACKOFF_CAP
    assert outbox.backoff(1, retry_after=45) == 45


def test_enqueue_is_idempotent_on_its_key(engine: Engine) -> None:
    assert add(engine) == add(engine)
    assert add(engine, "k2") != add(engine)


def test_only_one_claim_at_a_time(engine: Engine) -> None:
    oid = add(engine)
    with unit_of_work(engine) as db:
        assert outbox.claim(db, oid) is not None
    with unit_of_work(engine) as db:
        assert outbox.claim(db, oid) is None  # held
    with unit_of_work(engine) as db:  # the holder died: its claim lapses
        db.execute(update(Outbox).values(claimed_until=utcnow() - timedelta(seconds=1)))
        assert oid in outbox.overdue(db, grace=30)
    with unit_of_work(engine) as db:
        row = outbox.claim(db, oid)
        assert row is not None and row.attempts == 2
        outbox.mark_sent(db, oid, 1700000000123)
    with unit_of_work(engine) as db:
        assert outbox.claim(db, oid) is None
        assert db.get(Outbox, oid).status == OutboxStatus.SENT


def test_retryable_failure_reschedules_final_failure_stops(engine: Engine) -> None:
    oid = add(engine)
    with unit_of_work(engine) as db:
        row = outbox.claim(db, oid)
        plan = outbox.mark_failed_attempt(db, row, "503", retryable=True, max_age=3600)
    assert plan.delay == 2.0
    with unit_of_work(engine) as db:
        again = db.get(Outbox, oid)
        assert again.status == OutboxStatus.PENDING and again.next_attempt_at > utcnow()
        assert outbox.overdue(db, grace=0) == []  # not due yet
        row = outbox.claim(db, oid)
        assert outbox.mark_failed_attempt(db, row, "400 untrusted", retryable=False, max_age=3600).delay is None
    with unit_of_work(engine) as db:
        assert db.get(Outbox, oid).status == OutboxStatus.FAILED


def test_too_old_reply_is_given_up(engine: Engine) -> None:
    oid = add(engine)
    with unit_of_work(engine) as db:
        row = outbox.claim(db, oid)
        assert outbox.mark_failed_attempt(db, row, "503", retryable=True, max_age=0).delay is None
