"""Order within a conversation, without polling.

The listener stamps every message with the key of the one read just before it in the same conversation
(``after``). A message whose predecessor is not HANDLED yet is recorded RECEIVED and left alone: whoever
marks the predecessor HANDLED publishes it again once that commit is visible (:func:`successors`), so it
waits exactly as long as its predecessor, however long a host queue holds a ``/session start``. The
waiting message checks once more after its own commit, which closes the race with a predecessor that
finished in between. A predecessor the inbox never received (lost before it) or gave up on releases its
successors after a bound, and a released prompt is refused with a reply rather than guessed at.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Executable, bindparam, exists, select
from sqlalchemy.orm import Session as DB

from claude_signal.core import inbox
from claude_signal.core.wakeups import Wakeup, wake
from claude_signal.db.literals import constant
from claude_signal.db.models import Conversation, Inbox, Outbox, Session, utcnow
from claude_signal.rules import commands as c
from claude_signal.rules.states import InboxStatus, SessionStatus
from claude_signal.wire.inbound import COMMAND_TASK, InboundMessage
from claude_signal.wire.queues import SHARED_QUEUE

# How long a message waits for a predecessor the inbox has never seen. The listener keeps re-publishing an
# unacknowledged message: every ``republish_after`` once it is known lost, else with a doubling wait of at
# most 16 x ``republish_after`` (8 min by default), so past this it was lost for good.
MISSING_WAIT = 600.0
# A predecessor still RECEIVED after this long is one the sweep gave up on (sweep.INBOX_GIVE_UP).
STUCK_WAIT = 86400.0
# Dedupe-key suffix of the refusal of a prompt that followed a failed /session start or resume; the prompt
# after a refused one is refused too (both were sent before the failure could be read).
FAILED_SWITCH = "after-failed-switch"


class Verdict(StrEnum):
    READY = "ready"  # no predecessor, or it is handled
    WAIT = "wait"  # the predecessor is on its way or being handled; it wakes this one
    RELEASED = "released"  # the predecessor will never be handled; go on without it


def verdict(db: DB, msg: InboundMessage, received_at: datetime | None) -> Verdict:
    """May ``msg`` be handled now? ``received_at`` is when the inbox first recorded it."""
    if not msg.after or msg.kind == "reaction":
        return Verdict.READY
    before: Any = inbox.predecessor_as_recorded(db, msg.key)  # read with the insert, when it inserted
    if before is None:
        before = db.connection().execute(_predecessor(), {"k": msg.after}).one_or_none()
    elif before.status is None:
        before = None  # the inbox has never received it
    now = utcnow()
    if before is None:
        waited = (now - received_at).total_seconds() if received_at is not None else 0.0
        return Verdict.RELEASED if waited >= MISSING_WAIT else Verdict.WAIT
    if before.status == InboxStatus.HANDLED:
        return Verdict.READY
    return Verdict.RELEASED if before.received_at < now - timedelta(seconds=STUCK_WAIT) else Verdict.WAIT


def recheck_in(db: DB, msg: InboundMessage) -> float | None:
    """Seconds until a message waiting for a predecessor the inbox has not seen should look again (no one
    else will wake it if that predecessor never comes); None when the predecessor is known."""
    if not msg.after or db.get(Inbox, msg.after) is not None:
        return None
    row = db.get(Inbox, msg.key)
    waited = (utcnow() - row.received_at).total_seconds() if row is not None else 0.0
    return max(1.0, MISSING_WAIT - waited + 1.0)


def is_handled(db: DB, key: str) -> bool:
    status, _ = _successor_queries()
    return db.connection().execute(status, {"k": key}).scalar_one_or_none() == InboxStatus.HANDLED


def successors(db: DB, key: str, *, handled: bool | None = None) -> int:
    """Wake ``command.handle`` again for every message waiting for ``key``, once ``key`` is HANDLED
    (``handled``: the caller knows); how many it woke. Call it after the commit that marked ``key``
    HANDLED, in a new transaction, so a waiter that committed just before is seen."""
    _, waiting = _successor_queries()
    if not (is_handled(db, key) if handled is None else handled):
        return 0
    woken = 0
    for payload in db.connection().execute(waiting, {"k": key}).scalars():
        wake(db, Wakeup(COMMAND_TASK, (payload,), queue=SHARED_QUEUE))
        woken += 1
    return woken


def anyone_waiting_for(key: str) -> tuple[ColumnElement[bool], dict[str, Any]]:
    """A column that tells whether a message waits for ``key`` (with its parameters), for a statement that
    runs anyway after ``key`` was marked HANDLED: False spares :func:`successors` its query."""
    return _anyone_waiting(), {"waiting_for": key}


@cache
def _anyone_waiting() -> ColumnElement[bool]:
    return exists().where(*_waiting_for(bindparam("waiting_for"))).label("anyone_waiting")


def _waiting_for(key: Any) -> tuple[ColumnElement[bool], ...]:
    """The inbox rows recorded as waiting for the message ``key`` (a bound parameter)."""
    table = Inbox.__table__
    return table.c.status == constant(InboxStatus.RECEIVED), table.c.payload["after"].as_string() == key


@cache
def _predecessor() -> Executable:  # built once: every message the listener read after another asks
    table = Inbox.__table__
    return select(table.c.status, table.c.received_at).where(table.c.key == bindparam("k"))


@cache
def _successor_queries() -> tuple[Executable, Executable]:
    """Built once (every message runs them): a message's status, and the messages waiting for it."""
    table = Inbox.__table__
    status = select(table.c.status).where(table.c.key == bindparam("k"))
    waiting = select(table.c.payload).where(*_waiting_for(bindparam("k")))
    return status, waiting


def follows_failed_switch(db: DB, msg: InboundMessage) -> bool:
    """True when the message before this prompt was a ``/session start`` or ``/session resume`` that failed
    (or a prompt refused for that reason): the prompt was meant for a session that is not current, so it
    must not go to whichever session is."""
    if not msg.after:
        return False
    if db.execute(select(Outbox.id).where(Outbox.dedupe_key == f"{msg.after}:{FAILED_SWITCH}")).first():
        return True
    before = db.get(Inbox, msg.after)
    if before is None or before.kind != "message":
        return False
    command = c.parse(before.text)
    if isinstance(command, c.SessionStart):
        started = db.execute(select(Session.status).where(Session.origin_key == msg.after)).scalar_one_or_none()
        return started is None or started == SessionStatus.TERMINATED
    if isinstance(command, c.SessionResume) and command.ref:
        row = db.get(Conversation, msg.conversation)
        current = row.current_session_id if row is not None else None
        return current is None or not current.startswith(command.ref.lower())
    return False
