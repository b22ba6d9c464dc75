"""The sweep's re-publish of inbox rows left RECEIVED, against a real database: any backlog, oldest first,
and one message per stuck conversation (the rest are woken in order by their predecessors)."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import Engine, insert, update

from claude_signal.core import sweep
from claude_signal.db.engine import unit_of_work
from claude_signal.db.models import Inbox, utcnow
from claude_signal.rules.states import InboxStatus
from claude_signal.wire.inbound import COMMAND_TASK, InboundMessage


def row(conversation: str, timestamp: int, age: float, *, after: str | None = None,
        status: InboxStatus = InboxStatus.RECEIVED) -> dict:
    msg = InboundMessage.build(sender=conversation, conversation=conversation, timestamp=timestamp,
                               text=f"m{timestamp}", after=after)
    return {"key": msg.key, "sender": msg.sender, "conversation": conversation, "text": msg.text,
            "kind": "message", "payload": msg.model_dump(mode="json"), "status": status,
            "received_at": utcnow() - timedelta(seconds=age)}


def republished(engine: Engine) -> list[str]:
    with unit_of_work(engine) as db:
        return [w.args[0]["key"] for w in sweep.due(db) if w.task == COMMAND_TASK]


def test_a_backlog_larger_than_a_page_is_republished_whole_and_oldest_first(engine: Engine) -> None:
    """More stuck conversations than several pages hold, arrivals sharing timestamps, written out of order."""
    count = sweep.INBOX_PAGE * 2 + 137
    rows = [row(f"c{n}", 1000 + n, age=sweep.INBOX_GRACE + 600 - (n // 2)) for n in range(count)]
    shuffled = rows[:]
    random.Random(8).shuffle(shuffled)
    with unit_of_work(engine) as db:
        db.execute(insert(Inbox), shuffled)
    expected = [r["key"] for r in sorted(rows, key=lambda r: (r["received_at"], r["key"]))]
    assert republished(engine) == expected


def test_a_conversation_drains_in_order_one_message_at_a_time(engine: Engine) -> None:
    handled = row("alice", 1, age=900, status=InboxStatus.HANDLED)
    first = row("alice", 2, age=800, after=handled["key"])
    second = row("alice", 3, age=700, after=first["key"])
    third = row("alice", 4, age=600, after=second["key"])
    fresh = row("bob", 5, age=1)  # not overdue yet
    with unit_of_work(engine) as db:
        db.execute(insert(Inbox), [third, second, first, handled, fresh])
    assert republished(engine) == [first["key"]]  # the others wait for it, and it wakes them
    with unit_of_work(engine) as db:
        db.execute(update(Inbox).where(Inbox.key == first["key"]).values(status=InboxStatus.HANDLED))
    assert republished(engine) == [second["key"]]


def test_a_message_behind_one_given_up_on_is_republished(engine: Engine) -> None:
    """A predecessor past the give-up bound is no longer re-published, so it can wake nothing: its
    successor goes itself (and ordering releases it)."""
    abandoned = row("alice", 1, age=sweep.INBOX_GIVE_UP + 60)
    behind = row("alice", 2, age=sweep.INBOX_GRACE + 5, after=abandoned["key"])
    lost_before = row("bob", 3, age=sweep.INBOX_GRACE + 5, after="bob:2")  # its predecessor never arrived
    with unit_of_work(engine) as db:
        db.execute(insert(Inbox), [abandoned, behind, lost_before])
    assert republished(engine) == [behind["key"], lost_before["key"]]
