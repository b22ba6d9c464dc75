"""``command.handle``'s domain: record an inbound message once, understand it, act, and queue the reply.

Everything happens in the caller's one transaction. Work that needs a particular machine (opening a
directory, running ``claude``) is handed to that host's queue as a :class:`~claude_signal.core.wakeups.Wakeup`,
and the inbox row stays RECEIVED until the host finishes it; everything else marks the row HANDLED here.
A redelivered message whose row is HANDLED only re-sends replies that are still unsent.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import Executable, bindparam, exists, func, select, update
from sqlalchemy.orm import Session as DB

from claude_signal.config import Settings
from claude_signal.core import captions, outbox
from claude_signal.core.wakeups import wake_sender
from claude_signal.db.literals import constant
from claude_signal.db.models import Approval, Conversation, Schedule, Session, Turn, utcnow
from claude_signal.db.upsert import insert_or_ignore
from claude_signal.rules import replies
from claude_signal.rules.states import ApprovalStatus, ScheduleStatus, SessionStatus, TurnStatus
from claude_signal.wire.inbound import InboundMessage


@dataclass(frozen=True)
class Context:
    settings: Settings
    task_id: str | None = None
    local_host: str | None = None
    keep_order: bool = True


class NotYet(Exception):
    """The message before this one in its conversation is not handled yet; its handler wakes this one."""


class Reply(Exception):
    """Stop handling and answer with this text (an expected outcome, not an error)."""


def reply(db: DB, msg: InboundMessage, text: str, *, suffix: str = "reply") -> None:
    """Queue the answer to ``msg`` in this transaction; its dedupe key makes a second attempt a no-op."""
    wake_sender(db, outbox.enqueue(db, recipient=msg.conversation, text=text,
                                      dedupe_key=f"{msg.key}:{suffix}", inbox_key=msg.key))


def visible_sessions(db: DB, msg: InboundMessage):  # type: ignore[no-untyped-def]
    """Sessions this person may see: their own, and those bound to this conversation."""
    return select(Session).where((Session.owner == msg.sender) | (Session.conversation == msg.conversation))


def find_session(db: DB, msg: InboundMessage, ref: str) -> Session:
    """Exact id, or a unique prefix of one; a :class:`Reply` when none or several match."""
    base = visible_sessions(db, msg)
    exact = db.execute(base.where(Session.id == ref)).scalar_one_or_none()
    if exact is not None:
        return exact
    matches = db.execute(base.where(Session.id.startswith(ref, autoescape=True)).limit(6)).scalars().all()
    if not matches:
        raise Reply(replies.no_session_matches(ref))
    live = [s for s in matches if s.status != SessionStatus.TERMINATED]
    if len(matches) > 1 and len(live) != 1:
        raise Reply(replies.ambiguous(ref, [s.id for s in matches]))
    return live[0] if len(matches) > 1 else matches[0]


_CURRENT = "claude_signal.current_sessions"  # per transaction: conversation -> its current session


def current_session(db: DB, conversation: str, *, with_turn_state: bool = False) -> Session | None:
    """The session plain messages in ``conversation`` go to; asked once per transaction (a command asks it
    more than once, and only :func:`set_current` changes the answer). ``with_turn_state``: read its
    :func:`turn_state` in the same statement (``/status`` will ask for it)."""
    known: dict[str, Session | None] = db.info.setdefault(_CURRENT, {})
    if conversation not in known:
        row = db.execute(_current_session(with_turn_state), {"c": conversation}).one_or_none()
        _remember(db, conversation, row, with_turn_state)
    return known[conversation]


def _remember(db: DB, conversation: str, row: Any, with_turn_state: bool) -> None:
    """Keep for this transaction a row of :func:`_session_columns` (None: no current session)."""
    session = row[0] if row is not None else None
    db.info.setdefault(_CURRENT, {})[conversation] = session
    if session is not None:  # learnt on the way, so a command need not ask to let a picture go
        captions.note_holds_picture(db, session.id, row[1])
        if with_turn_state:
            db.info.setdefault(_TURN_STATES, {})[session.id] = TurnState(*row[2:6])


@dataclass(frozen=True)
class SessionReading:
    """:func:`current_session` read by the statement that records the message (:class:`inbox.Reading`):
    nearly every message needs its conversation's session, and on PostgreSQL that spares a round trip."""

    conversation: str
    with_turn_state: bool = False

    @property
    def params(self) -> dict[str, Any]:
        return {"c": self.conversation}

    def around(self, recording: Executable) -> Executable:
        return _recording_with_session(recording, self.with_turn_state)

    def take(self, db: DB, row: Any) -> None:
        _remember(db, self.conversation, row[3:] if row[3] is not None else None, self.with_turn_state)


@cache
def _recording_with_session(recording: Executable, with_turn_state: bool) -> Executable:
    added = recording.cte("added")  # type: ignore[attr-defined]
    return (select(added.c.received_at, added.c.before_status, added.c.before_received_at,
                   *_session_columns(with_turn_state))
            .select_from(added)
            .outerjoin(Conversation, Conversation.id == bindparam("c"))
            .outerjoin(Session, Session.id == Conversation.current_session_id))


@cache
def _current_session(with_turn_state: bool) -> Executable:  # built once: most messages ask
    return (select(*_session_columns(with_turn_state))
            .join(Conversation, Conversation.current_session_id == Session.id)
            .where(Conversation.id == bindparam("c")))


def _session_columns(with_turn_state: bool) -> tuple[Any, ...]:
    """The session, whether a picture of it waits, and (for ``/status``) its :class:`TurnState`."""
    extra = _turn_state_columns(Session.id) if with_turn_state else ()
    return (Session, captions.holds_picture(Session.id), *extra)


class TurnState(NamedTuple):
    running: str | None  # the running turn's prompt
    queued: int
    pending_approvals: int
    scheduled: bool  # a scheduled prompt has a next run


_TURN_STATES = "claude_signal.turn_states"  # db.info: session id -> TurnState, read with the session


def turn_state(db: DB, session_id: str) -> TurnState:
    """A session's running prompt, queued turns, open questions and whether a run is scheduled: read with
    the session when the caller asked :func:`current_session` for it, else in one statement of its own."""
    known = db.info.get(_TURN_STATES, {}).pop(session_id, None)
    if known is not None:
        return known
    return TurnState(*db.connection().execute(_turn_state(), {"s": session_id}).one())


@cache
def _turn_state() -> Executable:
    return select(*_turn_state_columns(bindparam("s")))


def _turn_state_columns(session: Any) -> tuple[Any, ...]:
    """Built once per statement that uses them (most sessions have no schedule: then /status needs no
    other statement)."""
    turn, approval, schedule = Turn.__table__, Approval.__table__, Schedule.__table__
    running = select(turn.c.prompt).where(turn.c.session_id == session,
                                          turn.c.status == constant(TurnStatus.RUNNING))
    queued = select(func.count()).where(turn.c.session_id == session, turn.c.status == constant(TurnStatus.QUEUED))
    pending = select(func.count()).where(approval.c.session_id == session,
                                         approval.c.status == constant(ApprovalStatus.PENDING))
    scheduled = exists().where(schedule.c.session_id == session,
                               schedule.c.status == constant(ScheduleStatus.ACTIVE),
                               schedule.c.next_run_at.is_not(None))
    return (running.limit(constant(1)).scalar_subquery().label("running"), queued.scalar_subquery().label("queued"),
            pending.scalar_subquery().label("pending"), scheduled.label("scheduled"))


def set_current(db: DB, conversation: str, session_id: str) -> None:
    """Plain messages in ``conversation`` go to this session, and its answers come back there (a session
    resumed in a group answers in that group from then on)."""
    db.info.get(_CURRENT, {}).pop(conversation, None)
    db.execute(update(Session).where(Session.id == session_id, Session.conversation != conversation)
               .values(conversation=conversation).execution_options(synchronize_session=False))
    if not insert_or_ignore(db, Conversation, {"id": conversation, "current_session_id": session_id,
                                               "updated_at": utcnow()}, "id"):
        db.execute(update(Conversation).where(Conversation.id == conversation)
                   .values(current_session_id=session_id, updated_at=utcnow())
                   .execution_options(synchronize_session=False))


def view(session: Session, *, current: bool = False) -> replies.SessionView:
    return replies.SessionView(id=session.id, status=session.status, host=session.host,
                               project_path=session.project_path, turn_count=session.turn_count,
                               cost_usd=session.cost_usd, current=current, reason=session.status_reason)
