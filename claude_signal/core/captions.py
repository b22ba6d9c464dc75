"""A picture sent alone waits for its caption: on a phone one often sends the screenshot, then types the
question. The picture becomes a queued turn held until ``hold_until`` (on the database's clock); the next
text message in the conversation becomes its prompt instead of a turn of its own. A command, another
picture, or the end of the wait (``CLAUDE_SIGNAL_CAPTION_WAIT``) lets it go to Claude as it is.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import BindParameter, ColumnElement, Executable, bindparam, exists, select, update
from sqlalchemy.orm import Session as DB

from claude_signal.core.attachments_in import is_image
from claude_signal.core.wakeups import Wakeup, next_turn, wake
from claude_signal.db.clock import db_now
from claude_signal.db.literals import constant
from claude_signal.db.models import Session, Turn
from claude_signal.rules.states import TurnStatus
from claude_signal.wire.inbound import InboundMessage
from claude_signal.wire.queues import SESSION_PROMPT, turn_queue


def is_lone_picture(msg: InboundMessage) -> bool:
    """Only pictures and no words: its question is probably on its way."""
    return msg.kind == "message" and not msg.text.strip() and bool(msg.files) and all(map(is_image, msg.files))


def hold_until(db: DB, session_id: str, wait: float) -> datetime:
    """Until when a picture of the session waits for its caption. Its held turn is being written in this
    transaction, so what the transaction knew of the session's held pictures no longer holds."""
    db.info.get(_HOLDS, {}).pop(session_id, None)
    return db_now(db) + timedelta(seconds=wait)


def expiry_wakeup(session: Session, wait: float) -> Wakeup:
    """Ask for the turn once the wait is over (a second later, so the hold has surely lapsed); the sweep
    brings it too should this message be lost."""
    return Wakeup(SESSION_PROMPT, (session.id,), queue=turn_queue(session.host), countdown=wait + 1.0)


def _held(session_id: str | BindParameter[str]):  # type: ignore[no-untyped-def]
    return (Turn.session_id == session_id, Turn.status == constant(TurnStatus.QUEUED), Turn.hold_until.is_not(None))


_HOLDS = "claude_signal.holds_picture"  # db.info: session id -> whether a picture of it waits (this transaction)


def holds_picture(session_id: ColumnElement[str]) -> ColumnElement[bool]:
    """True when a picture of the session waits for its caption; read with the session itself, since almost
    every message would otherwise ask once more only to learn that none does."""
    return exists().where(*_held(session_id)).label("holds_picture")


def note_holds_picture(db: DB, session_id: str, held: bool) -> None:
    """Remember for this transaction what :func:`holds_picture` said of the session."""
    db.info.setdefault(_HOLDS, {})[session_id] = bool(held)


def _surely_none_held(db: DB, session_id: str) -> bool:
    return db.info.get(_HOLDS, {}).get(session_id) is False


def add_caption(db: DB, session: Session, text: str) -> bool:
    """Give ``text`` to the session's held picture as its prompt, and let it run; False when no picture
    waits (or the wait is over), so ``text`` is a prompt of its own."""
    if _surely_none_held(db, session.id):
        return False
    turn_id = db.execute(select(Turn.id).where(*_held(session.id), Turn.hold_until > db_now(db))
                         .order_by(Turn.id.desc()).limit(1)).scalar_one_or_none()
    if turn_id is None:
        return False
    won = db.execute(update(Turn).where(Turn.id == turn_id, *_held(session.id))
                     .values(prompt=text, hold_until=None).execution_options(synchronize_session=False)).rowcount
    if won:
        wake(db, next_turn(session.id, session.host))
    return bool(won)


def release(db: DB, session: Session | None) -> None:
    """Let a held picture go to Claude without a caption (a command or another picture came instead)."""
    if session is None or _surely_none_held(db, session.id):
        return
    if db.connection().execute(_release(), {"s": session.id}).rowcount:
        wake(db, next_turn(session.id, session.host))


@cache
def _release() -> Executable:
    """Built once: every command runs it, and almost always it changes nothing."""
    return update(Turn).where(*_held(bindparam("s"))).values(hold_until=None)


def waiting_note(wait: float) -> str:
    minutes = f"{wait / 60:.0f} min" if wait >= 60 else f"{wait:.0f} s"
    return (f"Got the picture. Send your question about it as the next message (within {minutes}), "
            "or it goes to Claude as it is.")
