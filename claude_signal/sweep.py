"""Wake-ups the database says are due but that may have been lost (a crash between commit and publish).

Each worker asks for a sweep every few heartbeats. Everything it re-sends is idempotent, so a sweep that
races the original wake-up costs a no-op task, never a second effect.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import exists, select
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import aliased

from claude_signal import outbox
from claude_signal.db.models import Inbox, InboxStatus, Session, SessionStatus, Turn, TurnStatus, utcnow
from claude_signal.inbound import COMMAND_TASK
from claude_signal.wakeups import SHARED_QUEUE, Wakeup, Wakeups, next_turn

OUTBOX_GRACE = 30.0
INBOX_GRACE = 60.0
INBOX_GIVE_UP = 86400.0
TURN_GRACE = 30.0


def due(db: DB) -> Wakeups:
    wakeups = Wakeups()
    for outbox_id in outbox.overdue(db, grace=OUTBOX_GRACE):
        wakeups.send_reply(outbox_id)
    now = utcnow()
    stale_inbox = db.execute(
        select(Inbox.payload).where(
            Inbox.status == InboxStatus.RECEIVED,
            Inbox.received_at < now - timedelta(seconds=INBOX_GRACE),
            Inbox.received_at > now - timedelta(seconds=INBOX_GIVE_UP),
        ).limit(100)
    ).scalars()
    for payload in stale_inbox:
        wakeups.add(Wakeup(COMMAND_TASK, (payload,), queue=SHARED_QUEUE))
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
        wakeups.add(next_turn(session_id, host))
    return wakeups
