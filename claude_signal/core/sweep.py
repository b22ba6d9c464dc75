"""Wake-ups the database says are due but that may have been lost (a crash between commit and publish).

Each worker asks for a sweep every few heartbeats. Everything it re-sends is idempotent, so a sweep that
races the original wake-up costs a no-op task, never a second effect.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import aliased

from claude_signal.core import outbox
from claude_signal.core.wakeups import Wakeup, Wakeups, next_turn, pending, wake, wake_sender
from claude_signal.db.models import Inbox, Session, Turn, utcnow
from claude_signal.rules.states import InboxStatus, SessionStatus, TurnStatus
from claude_signal.wire.inbound import COMMAND_TASK
from claude_signal.wire.queues import SHARED_QUEUE

OUTBOX_GRACE = 30.0
INBOX_GRACE = 60.0
INBOX_GIVE_UP = 86400.0
INBOX_PAGE = 500
TURN_GRACE = 30.0


def stale_inbox(db: DB, now: datetime, *, page: int = INBOX_PAGE) -> Iterator[dict[str, Any]]:
    """Payloads of inbox rows still RECEIVED past the grace, oldest first, however many there are.

    A row whose predecessor in its conversation is itself still RECEIVED (and not given up on) is left
    out: that predecessor is re-published, and once handled it wakes this one (``ordering.successors``).
    So a backlog drains in its conversation's order, and each sweep publishes about one message per
    conversation that is stuck, not the whole backlog again. Read in pages by (arrival, key), so no row
    is starved by the ones before it; predecessors are looked up by key, a page at a time.
    """
    oldest = now - timedelta(seconds=INBOX_GIVE_UP)
    query = (select(Inbox.received_at, Inbox.key, Inbox.payload)
             .where(Inbox.status == InboxStatus.RECEIVED,
                    Inbox.received_at < now - timedelta(seconds=INBOX_GRACE), Inbox.received_at > oldest)
             .order_by(Inbox.received_at, Inbox.key).limit(page))
    last: tuple[datetime, str] | None = None
    while True:
        stmt = query if last is None else query.where(or_(
            Inbox.received_at > last[0], and_(Inbox.received_at == last[0], Inbox.key > last[1])))
        rows = db.execute(stmt).all()
        afters = {after for _, _, payload in rows if isinstance(after := payload.get("after"), str)}
        pending = set(db.execute(select(Inbox.key).where(
            Inbox.key.in_(afters), Inbox.status == InboxStatus.RECEIVED, Inbox.received_at > oldest)).scalars()
        ) if afters else set()
        for received_at, key, payload in rows:
            if payload.get("after") not in pending:
                yield payload
            last = (received_at, key)
        if len(rows) < page:
            return


def due(db: DB) -> Wakeups:
    wakeups = pending(db)
    for outbox_id in outbox.overdue(db, grace=OUTBOX_GRACE):
        wake_sender(db, outbox_id)
    now = utcnow()
    for payload in stale_inbox(db, now):
        wake(db, Wakeup(COMMAND_TASK, (payload,), queue=SHARED_QUEUE))
    running = aliased(Turn)
    waiting = db.execute(
        select(Session.id, Session.host).distinct()
        .join(Turn, Turn.session_id == Session.id)
        .where(
            Session.status == SessionStatus.ACTIVE,
            Turn.status == TurnStatus.QUEUED,
            Turn.created_at < now - timedelta(seconds=TURN_GRACE),
            ~exists().where(running.session_id == Session.id, running.status == TurnStatus.RUNNING),
        )
    ).all()
    for session_id, host in waiting:
        wake(db, next_turn(session_id, host))
    return wakeups
