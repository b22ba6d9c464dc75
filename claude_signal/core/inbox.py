"""``command.handle``'s domain: record an inbound message once, understand it, act, and queue the reply.

Everything happens in the caller's one transaction. Work that needs a particular machine (opening a
directory, running ``claude``) is handed to that host's queue as a :class:`~claude_signal.core.wakeups.Wakeup`,
and the inbox row stays RECEIVED until the host finishes it; everything else marks the row HANDLED here.
A redelivered message whose row is HANDLED only re-sends replies that are still unsent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Executable, bindparam, select, update
from sqlalchemy.orm import Session as DB

from claude_signal.config import Settings
from claude_signal.db.models import Inbox, utcnow
from claude_signal.db.upsert import insert_ignoring, insert_or_ignore_returning
from claude_signal.rules.states import InboxStatus
from claude_signal.wire import senders
from claude_signal.wire.inbound import InboundMessage

_HANDLED_NOW = "claude_signal_handled_now"  # db.info: the keys this transaction marked HANDLED


@dataclass(frozen=True)
class Predecessor:
    """The inbox's state of the message read just before this one (``msg.after``), as :func:`record` saw
    it; ``status`` None when the inbox has never received it."""

    status: str | None
    received_at: datetime | None


class Recorded(NamedTuple):
    """The message's row as :func:`record` found it: ``status`` RECEIVED for a row it has just written."""

    status: str
    received_at: datetime


class Reading(Protocol):
    """Something else to read in the statement that records the message (on PostgreSQL, where an INSERT can
    be a CTE of a SELECT): one round trip instead of two."""

    params: dict[str, Any]

    def around(self, recording: Executable) -> Executable:
        """The statement: ``recording`` (the INSERT … RETURNING of :func:`record`) as a CTE named ``added``,
        its three columns first, then what this reads; no row when the message was known."""

    def take(self, db: DB, row: Any) -> None:
        """Keep what the statement read, for this transaction."""


def record(db: DB, msg: InboundMessage, *, with_predecessor: bool = False, handled_here: bool = False,
           reading: Reading | None = None) -> Recorded:
    """Insert the message unless its key is known; returns the row's ``status`` and ``received_at`` (new, or
    as the earlier delivery left them), the row locked until this transaction ends, so two copies handled at
    once take turns: the second finds the first's work done (PostgreSQL; SQLite runs one writer at a time).

    ``with_predecessor``: the same statement reads the state of ``msg.after`` (the ordering check needs it,
    and almost every message has one) for :func:`predecessor_as_recorded`; not when the key was known.
    ``handled_here``: the caller knows this transaction ends with the message HANDLED (or
    rolls back), so a new row is written HANDLED at once and :func:`mark_handled` costs no statement.
    ``reading``: read more in the same statement (PostgreSQL, with the predecessor; see :class:`Reading`)."""
    now = utcnow()
    values = {"key": msg.key, "sender": msg.sender, "conversation": msg.conversation, "text": msg.text,
              "kind": msg.kind, "payload": msg.model_dump(mode="json"),
              "status": InboxStatus.HANDLED if handled_here else InboxStatus.RECEIVED, "received_at": now,
              "handled_at": now if handled_here else None}
    if with_predecessor and msg.after:
        db.flush()
        dialect = db.get_bind().dialect.name
        recording = _record_with_predecessor(dialect)
        params = {**{f"v_{name}": value for name, value in values.items()}, "after": msg.after}
        if reading is not None and dialect == "postgresql":
            added = db.execute(reading.around(recording), {**params, **reading.params}).first()
            if added is not None:
                reading.take(db, added)
        else:
            added = db.connection().execute(recording, params).first()
        if added is not None:
            db.info.setdefault(_PREDECESSORS, {})[msg.key] = Predecessor(added.before_status,
                                                                        added.before_received_at)
    else:
        added = insert_or_ignore_returning(db, Inbox, values, "key", ["received_at"])
    if added is None:
        status, received_at = db.connection().execute(_inbox_state(), {"k": msg.key}).one()
        return Recorded(status, received_at)
    if handled_here:
        db.info.setdefault(_WRITTEN_HANDLED, set()).add(msg.key)
        db.info.setdefault(_HANDLED_NOW, set()).add(msg.key)
    return Recorded(InboxStatus.RECEIVED, added.received_at)


_WRITTEN_HANDLED = "claude_signal.written_handled"  # db.info: keys this transaction wrote HANDLED at once
_PREDECESSORS = "claude_signal.predecessors"  # db.info: key -> its Predecessor, read when it was recorded


def predecessor_as_recorded(db: DB, key: str) -> Predecessor | None:
    """What :func:`record` read of the predecessor of the message ``key`` in this transaction, if it did."""
    return db.info.get(_PREDECESSORS, {}).get(key)


@cache
def _record_with_predecessor(dialect: str) -> Executable:
    table = Inbox.__table__
    before = table.alias("before")
    names = ("key", "sender", "conversation", "text", "kind", "payload", "status", "received_at", "handled_at")

    def of_before(column: str) -> Any:
        return (select(before.c[column]).where(before.c.key == bindparam("after", type_=table.c.key.type))
                .scalar_subquery())

    return (insert_ignoring(dialect, table, {name: bindparam(f"v_{name}", type_=table.c[name].type)
                                             for name in names}, "key")
            .returning(table.c.received_at, of_before("status").label("before_status"),
                       of_before("received_at").label("before_received_at")))


@cache
def _inbox_state() -> Executable:
    table = Inbox.__table__
    return select(table.c.status, table.c.received_at).where(table.c.key == bindparam("k")).with_for_update()


@cache
def _mark_handled() -> Executable:  # built once: every message runs it
    table = Inbox.__table__
    return (update(table).where(table.c.key == bindparam("k"), table.c.status == InboxStatus.RECEIVED)
            .values(status=InboxStatus.HANDLED, handled_at=bindparam("now")))


def mark_handled(db: DB, key: str) -> bool:
    """RECEIVED → HANDLED as a compare-and-set; True when this call made the change (a claim), or when this
    transaction wrote the row HANDLED (see :func:`record`)."""
    if key in db.info.get(_WRITTEN_HANDLED, ()):
        return True
    db.flush()
    changed: bool = db.connection().execute(_mark_handled(), {"k": key, "now": utcnow()}).rowcount == 1
    if changed:
        db.info.setdefault(_HANDLED_NOW, set()).add(key)
    return changed


def leave_for_host(db: DB, key: str) -> None:
    """The message is a host's to finish after all: undo :func:`record`'s HANDLED, if it wrote one (it
    never should: the caller decides from the same command that decides this)."""
    if key in db.info.get(_WRITTEN_HANDLED, ()):
        table = Inbox.__table__
        db.connection().execute(update(table).where(table.c.key == key)
                                .values(status=InboxStatus.RECEIVED, handled_at=None))
        db.info[_WRITTEN_HANDLED].discard(key)
        db.info[_HANDLED_NOW].discard(key)


def handled_now(db: DB, key: str) -> bool:
    """True when this transaction marked ``key`` HANDLED (not a copy that found it so)."""
    return key in db.info.get(_HANDLED_NOW, ())


def is_authorized(settings: Settings, msg: InboundMessage) -> bool:
    """The listener already filters; the worker checks again with the same rule (an empty list: nobody)."""
    uuid = None if senders.is_number(msg.sender) else msg.sender
    number = msg.sender_number or (msg.sender if senders.is_number(msg.sender) else None)
    if msg.sender_number and senders.is_number(msg.sender) and msg.sender != msg.sender_number:
        return False  # two numbers for one sender: not a frame the listener makes
    return senders.authorized(settings.authorized, number, uuid)
