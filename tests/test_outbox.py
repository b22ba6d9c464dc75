"""Replies are claimed by one sender at a time, retried with backoff, and given up only when final."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, event, insert, select, text, update

from claude_signal.core import outbox
from claude_signal.db.engine import unit_of_work
from claude_signal.db.models import Outbox, utcnow
from claude_signal.rules.states import OutboxStatus


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


def test_replies_to_one_recipient_are_claimed_oldest_first(engine: Engine) -> None:
    first, second = add(engine, "a"), add(engine, "b")
    with unit_of_work(engine) as db:
        other = outbox.enqueue(db, recipient="bob", text="hi", dedupe_key="c")
    with unit_of_work(engine) as db:
        head = outbox.claim_next_for(db, "alice")
        assert head is not None and head.id == first
        assert outbox.claim_next_for(db, "alice") is None  # the head is being sent: the rest wait behind it
        bob = outbox.claim_next_for(db, "bob")
        assert bob is not None and bob.id == other  # another person's lane is independent
        outbox.mark_sent(db, first, 1)
        nxt = outbox.claim_next_for(db, "alice")
        assert nxt is not None and nxt.id == second


def test_a_head_waiting_out_a_backoff_holds_back_the_rest(engine: Engine) -> None:
    first, _second = add(engine, "a"), add(engine, "b")
    with unit_of_work(engine) as db:
        row = outbox.claim_next_for(db, "alice")
        assert row is not None
        plan = outbox.mark_failed_attempt(db, row, "429", retryable=True, max_age=3600)
        assert plan.delay == 2.0
        assert outbox.claim_next_for(db, "alice") is None
        later = outbox.claim_next_for(db, "alice", now=utcnow() + timedelta(seconds=3))
        assert later is not None and later.id == first


def test_part_progress_survives_a_failed_attempt(engine: Engine) -> None:
    oid = add(engine)
    with unit_of_work(engine) as db:
        row = outbox.claim(db, oid)
        assert row is not None
        outbox.mark_parts_sent(db, oid, 2, 555)
        outbox.mark_failed_attempt(db, row, "500", retryable=True, max_age=3600)
    with unit_of_work(engine) as db:
        again = outbox.claim(db, oid, now=utcnow() + timedelta(seconds=3))
        assert again is not None and (again.parts_sent, again.signal_timestamp) == (2, 555)


def test_own_send_seen_again_is_recognised(engine: Engine) -> None:
    oid = add(engine)
    with unit_of_work(engine) as db:
        outbox.claim(db, oid)
        outbox.mark_sent(db, oid, 777)
    with unit_of_work(engine) as db:
        assert outbox.is_own_send(db, "alice", 777, "anything")
        assert outbox.is_own_send(db, "alice", 1, "hi")
        assert not outbox.is_own_send(db, "alice", 1, "/status")
        assert not outbox.is_own_send(db, "bob", 777, "hi")


def test_due_head_is_what_a_leaving_sender_must_wake(engine: Engine) -> None:
    first = add(engine, "a")
    with unit_of_work(engine) as db:
        assert outbox.due_head(db, "alice") == first
        row = outbox.claim_next_for(db, "alice")
        assert row is not None
        assert outbox.due_head(db, "alice") is None  # being sent
        outbox.mark_failed_attempt(db, row, "500", retryable=True, max_age=3600)
        assert outbox.due_head(db, "alice") is None  # waiting out its backoff: its own wake-up comes later
        assert outbox.due_head(db, "alice", now=utcnow() + timedelta(seconds=3)) == first


def test_marking_a_reply_sent_tells_which_reply_waited_behind_it(engine: Engine) -> None:
    """The mark and the look at what comes next are one statement: it answers with the recipient's next
    reply when that one may go now, and with nothing when it waits out a backoff, when there is none, or
    when the claim was lost (the row is another sender's, and so is what follows it)."""
    first = add(engine, "a")
    with unit_of_work(engine) as db:
        mine = outbox.claim_to_send_here(db, first, hold=10)
        assert mine is not None
    second, third, fourth = add(engine, "b"), add(engine, "c"), add(engine, "d")
    with unit_of_work(engine) as db:
        assert outbox.mark_sent_then_due_head(db, mine, 1700000000001) == (second, None)
        row = db.get(Outbox, first)
        assert (row.status, row.signal_timestamp) == (OutboxStatus.SENT, 1700000000001)
        nxt = outbox.claim_next_for(db, "alice")
        assert nxt is not None and nxt.id == second
        outbox.mark_failed_attempt(db, nxt, "500", retryable=True, max_age=3600)  # waits out a backoff
        out_of_turn = outbox.claim(db, third)
        assert out_of_turn is not None
        assert outbox.mark_sent_then_due_head(db, out_of_turn, 2) == (None, None)  # the head is not due yet
        db.execute(update(Outbox).where(Outbox.id == second).values(next_attempt_at=utcnow() - timedelta(1)))
        lost = outbox.claim(db, fourth)
        assert lost is not None
        table = Outbox.__table__  # behind the ORM's back: ``lost`` keeps the attempt it claimed with
        db.connection().execute(update(table).where(table.c.id == fourth).values(attempts=table.c.attempts + 1))
        assert outbox.mark_sent_then_due_head(db, lost, 3) is None  # fenced: not ours, nothing marked
        assert db.get(Outbox, fourth, populate_existing=True).status == OutboxStatus.SENDING
    bob = add(engine, "x-bob")
    with unit_of_work(engine) as db:
        db.execute(update(Outbox).where(Outbox.id == bob).values(recipient="bob"))
        claimed = outbox.claim(db, bob)
        assert claimed is not None
        assert outbox.mark_sent_then_due_head(db, claimed, 4) == (None, None)  # nothing behind it for bob


def test_the_task_that_wrote_a_reply_claims_it_only_when_nothing_is_ahead(engine: Engine) -> None:
    """The writer of a reply may post it itself only if it is its recipient's oldest unsent reply, pending
    and out of any backoff; while it does, nobody else sends to that recipient."""
    first, second = add(engine, "a"), add(engine, "b")
    with unit_of_work(engine) as db:
        assert outbox.claim_to_send_here(db, second, hold=10) is None  # the first one is still unsent
        mine = outbox.claim_to_send_here(db, first, hold=10)
        assert mine is not None and (mine.recipient, mine.text, mine.attempts) == ("alice", "hi", 1)
        assert outbox.claim_to_send_here(db, first, hold=10) is None
        assert outbox.claim_next_for(db, "alice") is None  # its head is being sent
        outbox.mark_sent(db, first, 1, attempt=mine.attempts)
        again = outbox.claim_to_send_here(db, second, hold=10)
        outbox.hand_back(db, again)  # too long to post there: as if never claimed
        row = db.get(Outbox, second, populate_existing=True)
        assert (row.status, row.attempts, row.claimed_until) == (OutboxStatus.PENDING, 0, None)
        failing = outbox.claim(db, second)
        outbox.mark_failed_attempt(db, failing, "429", retryable=True, max_age=3600)
        assert outbox.claim_to_send_here(db, second, hold=10) is None  # waiting out its backoff


def test_a_task_that_posts_its_own_replies_writes_them_claimed_when_nothing_is_ahead(engine: Engine) -> None:
    """With the offer made, a short reply is written already claimed (one statement, not an insert and a
    claim) unless a reply to its recipient is still unsent; a long one, a file, or a second copy of the
    same reply is written as ever, for ``outbox.send``."""
    short = outbox.SendHere(hold=30, fits=lambda text, _mode: len(text) < 20)
    with unit_of_work(engine) as db:
        outbox.offer_to_send_here(db, short)
        first = outbox.enqueue(db, recipient="alice", text="hi", dedupe_key="a")
        behind = outbox.enqueue(db, recipient="alice", text="and more", dedupe_key="b")
        long = outbox.enqueue(db, recipient="bob", text="x" * 50, dedupe_key="c")
        again = outbox.enqueue(db, recipient="alice", text="hi", dedupe_key="a")
        (mine,) = outbox.take_claimed_at_insert(db)  # neither the one behind it nor the long one
        assert again == first and mine.id == first and outbox.take_claimed_at_insert(db) == []
        rows = {r.id: r for r in db.execute(select(Outbox)).scalars()}
        assert (rows[first].status, rows[first].attempts) == (OutboxStatus.SENDING, 1)
        assert rows[first].claimed_until == rows[first].created_at + timedelta(seconds=30)
        # what the writer is handed to post is the row as written, claim token included
        handed = (mine.recipient, mine.text, mine.text_mode, mine.attempts, mine.created_at, mine.parts_sent)
        stored = rows[first]
        assert handed == (stored.recipient, stored.text, stored.text_mode, stored.attempts, stored.created_at,
                          stored.parts_sent)
        assert (mine.attachments, mine.signal_timestamp) == (stored.attachments, stored.signal_timestamp)
        assert [(rows[i].status, rows[i].attempts, rows[i].claimed_until) for i in (behind, long)] == [
            (OutboxStatus.PENDING, 0, None)] * 2
        assert outbox.claim_next_for(db, "alice") is None  # its head is being sent by the writer
    with unit_of_work(engine) as db:  # no offer: as before
        plain = outbox.enqueue(db, recipient="carol", text="hi", dedupe_key="d")
        assert outbox.take_claimed_at_insert(db) == []
        assert db.get(Outbox, plain).status == OutboxStatus.PENDING


def test_a_recipients_unsent_replies_are_found_without_reading_what_was_sent(engine: Engine) -> None:
    """Each reply asks whether one to its recipient is still unsent, and each mark asks which one is next.
    Both read the partial index of unsent rows (a handful) rather than the recipient's history, which grows
    for as long as the bot runs: the plans the database makes for the statements as they ran say so."""
    now = utcnow()
    with unit_of_work(engine) as db:
        db.execute(insert(Outbox), [
            {"dedupe_key": f"old{i}", "recipient": "alice", "text": "hi", "status": OutboxStatus.SENT,
             "next_attempt_at": now, "created_at": now} for i in range(400)])
        db.execute(text("ANALYZE"))
    ran: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, parameters, *_args) -> None:  # type: ignore[no-untyped-def]
        if statement.startswith(("INSERT INTO outbox", "UPDATE outbox")):
            ran.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with unit_of_work(engine) as db:
            outbox.offer_to_send_here(db, outbox.SendHere(hold=30, fits=lambda _text, _mode: True))
            outbox.enqueue(db, recipient="alice", text="hi", dedupe_key="new")
            (mine,) = outbox.take_claimed_at_insert(db)
            assert outbox.mark_sent_then_due_head(db, mine, 123) is not None
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert [statement.split()[0] for statement, _ in ran] == ["INSERT", "UPDATE"]
    explain = "EXPLAIN " if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
    raw = engine.raw_connection()
    try:
        for statement, parameters in ran:
            cursor = raw.cursor()
            cursor.execute(explain + statement, parameters)
            plan = [str(row[-1]) for row in cursor.fetchall()]
            cursor.close()
            assert _seeks_only_unsent(plan, engine.dialect.name), plan
    finally:
        raw.rollback()
        raw.close()


def _seeks_only_unsent(plan: list[str], dialect: str) -> bool:
    """PostgreSQL reads the partial index; SQLite reads it, or seeks each unsent status in the recipient's
    part of ``ix_outbox_recipient_status`` (the same rows)."""
    if dialect == "postgresql":
        return any("ix_outbox_unsent" in line for line in plan)
    # the searches of the other rows (aliased ahead, next); the row itself is found by its id
    searches = [line for line in plan if line.startswith("SEARCH") and line.split()[1] != "outbox"]
    return bool(searches) and all("ix_outbox_unsent" in line or "status=?" in line for line in searches)

