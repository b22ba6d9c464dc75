"""Replies waiting to be sent: written with the change they report, sent and marked by ``outbox.send``.

A row moves PENDING → SENDING (claimed for a short while) → SENT, or back to PENDING with a later
``next_attempt_at`` after a failure that may pass (429, 5xx, connection errors), or to FAILED when Signal
refuses it for good or it has waited longer than ``outbox_max_age``. Two senders can never both hold a
claim; a sender that dies mid-send lets the claim lapse and the row is sent again (at least once, with
duplicates bounded by the dedupe key).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, NamedTuple, Protocol

from sqlalchemy import ColumnElement, Executable, Select, bindparam, case, exists, null, or_, select, update
from sqlalchemy.orm import Session as DB

from claude_signal.db.clock import tx_now
from claude_signal.db.literals import constant
from claude_signal.db.models import Outbox, outbox_unsent
from claude_signal.db.upsert import insert_ignoring, insert_or_ignore_returning
from claude_signal.rules import chunking
from claude_signal.rules.states import OutboxStatus

CLAIM_SECONDS = 60.0  # default hold; senders pass their own (HTTP timeout plus a margin)
BACKOFF_BASE = 2.0
BACKOFF_CAP = 300.0
DUE_SLACK = timedelta(seconds=1)  # a reply due at once is written as due this long ago (new_row)


def backoff(attempts: int, retry_after: float | None = None) -> float:
    """Seconds before the next try: doubling from 2 s, capped at 5 minutes; a server's hint wins if longer."""
    delay = min(BACKOFF_CAP, BACKOFF_BASE * (2 ** max(0, attempts - 1)))
    return max(delay, retry_after or 0.0)


class Claimed(Protocol):
    """A claimed reply as its sender sees it: an :class:`Outbox` row, or the columns a claim returned."""

    id: int
    recipient: str
    text: str
    text_mode: str
    attempts: int
    parts_sent: int
    signal_timestamp: int | None
    created_at: datetime
    attachments: dict[str, Any] | None


T = Outbox.__table__


def _unsent(table: Any) -> Any:
    return outbox_unsent(table.c.status)


def enqueue(
    db: DB,
    *,
    recipient: str,
    text: str,
    dedupe_key: str,
    inbox_key: str | None = None,
    text_mode: str = "normal",
    attachments: dict[str, Any] | None = None,
) -> int:
    """Add a reply unless one with this dedupe key exists; returns the row id either way. ``attachments``
    are files sent with it (:func:`claude_signal.rules.attachments_out.pack`).

    In a transaction whose task posts its replies itself (:func:`offer_to_send_here`), a reply it may post
    is written already claimed when no reply to its recipient is ahead of it: the claim costs no statement
    of its own, and :func:`take_claimed_at_insert` hands the row over."""
    values = new_row(db, dedupe_key=dedupe_key, recipient=recipient, text=text, inbox_key=inbox_key,
                     text_mode=text_mode, attachments=attachments)
    offer: SendHere | None = db.info.get(_SEND_HERE)
    if offer is not None and not attachments and offer.fits(text, text_mode):
        db.flush()
        row = db.connection().execute(_insert_claimed(db.get_bind().dialect.name), {
            **{f"v_{name}": values[name] for name in _CLAIMED_INSERT_VALUES},
            "until": values["created_at"] + timedelta(seconds=offer.hold)}).first()
        if row is not None:
            if row.status == OutboxStatus.SENDING:
                db.info.setdefault(_CLAIMED_AT_INSERT, {})[row.id] = ClaimedAtInsert(
                    row.id, recipient, text, text_mode, row.attempts, values["created_at"])
            return int(row.id)
    else:
        added = insert_or_ignore_returning(db, Outbox, values, "dedupe_key", ["id"])
        if added is not None:
            return int(added.id)
    return db.connection().execute(_by_key(), {"key": dedupe_key}).scalar_one()


_SEND_HERE = "claude_signal.send_here"  # db.info: the offer of a task that posts after its commit
_CLAIMED_AT_INSERT = "claude_signal.claimed_at_insert"  # db.info: reply id -> the row, claimed as written


@dataclass(frozen=True)
class SendHere:
    """A task's offer to post this transaction's replies itself: each claim held for ``hold`` seconds, for
    replies that ``fits`` (text, text mode) says go out as one message."""

    hold: float
    fits: Callable[[str, str], bool]


def offer_to_send_here(db: DB, offer: SendHere) -> None:
    db.info[_SEND_HERE] = offer


@dataclass(frozen=True)
class ClaimedAtInsert:
    """A reply :func:`enqueue` wrote claimed: what it wrote, and the id and claim the INSERT returned (a
    reply offered to its writer has no attachments and no part sent yet)."""

    id: int
    recipient: str
    text: str
    text_mode: str
    attempts: int
    created_at: datetime
    attachments: None = None
    parts_sent: int = 0
    signal_timestamp: int | None = None


def take_claimed_at_insert(db: DB) -> list[Claimed]:
    """The replies this transaction wrote claimed (see :func:`enqueue`), oldest first; each only once."""
    return list(db.info.pop(_CLAIMED_AT_INSERT, {}).values())


_CLAIMED_INSERT_VALUES = ("dedupe_key", "inbox_key", "recipient", "text", "text_mode", "attachments",
                          "next_attempt_at", "created_at")


@cache
def _insert_claimed(dialect: str) -> Executable:
    """Insert a new reply (unless its dedupe key exists), claimed for its writer unless a reply to the same
    recipient is still unsent: the same guard as :func:`claim_to_send_here`, inside the INSERT."""
    other = T.alias("ahead")
    ahead = exists().where(other.c.recipient == bindparam("v_recipient"), _unsent(other))
    return insert_ignoring(dialect, T, {
        **{name: bindparam(f"v_{name}", type_=T.c[name].type) for name in _CLAIMED_INSERT_VALUES},
        "status": case((ahead, constant(OutboxStatus.PENDING)), else_=constant(OutboxStatus.SENDING)),
        "attempts": case((ahead, constant(0)), else_=constant(1)),
        "claimed_until": case((ahead, None), else_=bindparam("until", type_=T.c.claimed_until.type)),
    }, "dedupe_key").returning(T.c.id, T.c.status, T.c.attempts)


def new_row(db: DB, *, dedupe_key: str, recipient: str, text: str, inbox_key: str | None = None,
            text_mode: str = "normal", attachments: dict[str, Any] | None = None) -> dict[str, Any]:
    """The values of a new reply, due at once: written as due :data:`DUE_SLACK` ago, so a sender whose
    reading of the database's clock is a moment behind the writer's (:mod:`claude_signal.db.clock`) still
    finds it due, instead of leaving it to the sweep."""
    now = tx_now(db)
    return {"dedupe_key": dedupe_key, "inbox_key": inbox_key, "recipient": recipient, "text": text,
            "text_mode": text_mode, "attachments": attachments, "status": OutboxStatus.PENDING, "attempts": 0,
            "next_attempt_at": now - DUE_SLACK, "created_at": now}


@cache
def _by_key() -> Executable:
    return select(T.c.id).where(T.c.dedupe_key == bindparam("key"))


@cache
def _take(where: str, orm: bool) -> Executable:
    """One compare-and-set UPDATE … RETURNING that claims a row: the claimed row comes back, or nothing
    when the guard did not hold. Every claim counts an attempt, which is the claim's fencing token.

    ``where``: ``id`` (the row, if due and nobody holds it), ``head`` (the recipient's oldest unsent row,
    if due) or ``here`` (the row, if pending and out of its backoff, with no reply to its recipient ahead)."""
    now = bindparam("now")
    claimable = or_(T.c.status == OutboxStatus.PENDING,
                    (T.c.status == OutboxStatus.SENDING) & (T.c.claimed_until < now))
    other = T.alias("other")
    if where == "id":
        guard = [T.c.id == bindparam("oid"), claimable]
    elif where == "head":
        head = (select(other.c.id).where(other.c.recipient == bindparam("to"), _unsent(other))
                .order_by(other.c.id).limit(1).scalar_subquery())
        guard = [T.c.id == head, _due(T.c, now)]
    else:
        ahead = exists().where(other.c.recipient == T.c.recipient, other.c.id < T.c.id, _unsent(other))
        guard = [T.c.id == bindparam("oid"), T.c.status == OutboxStatus.PENDING, T.c.next_attempt_at <= now, ~ahead]
    changes = {"status": OutboxStatus.SENDING, "claimed_until": bindparam("until"), "attempts": T.c.attempts + 1}
    if orm:  # the caller gets an Outbox instance (outbox.send holds on to it)
        return (update(Outbox).where(*guard).values(changes).returning(Outbox)
                .execution_options(synchronize_session=False, populate_existing=True))
    return update(T).where(*guard).values(changes).returning(*T.c)


def _params(now: datetime, hold: float, **extra: Any) -> dict[str, Any]:
    return {"now": now, "until": now + timedelta(seconds=hold), **extra}


def claim(db: DB, outbox_id: int, now: datetime | None = None, hold: float = CLAIM_SECONDS) -> Outbox | None:
    """Take the row for sending if it is due and nobody holds it; None means someone else has it or it is done."""
    return db.execute(_take("id", True), _params(now or tx_now(db), hold, oid=outbox_id)).scalar_one_or_none()


def claim_to_send_here(db: DB, outbox_id: int, hold: float, now: datetime | None = None) -> Claimed | None:
    """In the transaction that wrote the reply: claim it for the task that handled the message, to post
    right after the commit, unless a reply to the same recipient is still ahead of it (order comes first:
    that one's sender sends this one after it). The claim commits with the reply, so a sender that dies
    before posting leaves a claim that lapses and the sweep hands the row to ``outbox.send``."""
    return db.connection().execute(_take("here", False), _params(now or tx_now(db), hold, oid=outbox_id)).first()


def hand_back(db: DB, row: Claimed) -> None:
    """Undo a claim this transaction made and has not committed (a reply too long to send here)."""
    db.execute(update(Outbox).where(Outbox.id == row.id, Outbox.attempts == row.attempts)
               .values(status=OutboxStatus.PENDING, claimed_until=None, attempts=Outbox.attempts - 1)
               .execution_options(synchronize_session=False))


def renew_claim(db: DB, row: Claimed, hold: float, now: datetime | None = None) -> bool:
    """Extend this sender's claim on ``row``; False when it lapsed and another sender claimed the row since
    (every claim counts an attempt, so ``attempts`` is the claim's fencing token)."""
    return bool(db.execute(
        update(Outbox)
        .where(Outbox.id == row.id, Outbox.status == OutboxStatus.SENDING, Outbox.attempts == row.attempts)
        .values(claimed_until=(now or tx_now(db)) + timedelta(seconds=hold))
        .execution_options(synchronize_session=False)
    ).rowcount)


@cache
def _mark_sent(fenced: bool, then_due_head: bool = False) -> Executable:
    fence = [T.c.attempts == bindparam("attempt")] if fenced else []
    stmt = (update(T).where(T.c.id == bindparam("oid"), T.c.status == constant(OutboxStatus.SENDING), *fence)
            .values(status=constant(OutboxStatus.SENT), sent_at=bindparam("now"), signal_timestamp=bindparam("ts"),
                    last_error=null()))
    if not then_due_head:
        return stmt
    # The recipient's next reply, if due, as a scalar subquery in RETURNING: the row being marked is left
    # out by id, so it does not matter whether the subquery sees it before or after the change.
    return stmt.returning(_due_head_of(bindparam("to"), besides=bindparam("oid")).scalar_subquery()
                          .label("due_head"))


def _due_head_of(recipient: Any, *, besides: Any = None) -> Select[Any]:
    """The id of the recipient's oldest unsent reply (other than ``besides``), if it may be sent now."""
    other = T.alias("next")
    head = (select(other.c.id, other.c.status, other.c.next_attempt_at, other.c.claimed_until)
            .where(other.c.recipient == recipient, _unsent(other),
                   *([other.c.id != besides] if besides is not None else []))
            .order_by(other.c.id).limit(constant(1)).subquery("head"))
    return select(head.c.id).where(_due(head.c, bindparam("now")))


def _due(row: Any, now: Any) -> ColumnElement[bool]:
    """A reply that may be sent at ``now``: pending and out of its backoff, or held by a sender whose claim
    lapsed (``row``: the columns of an outbox row, or of a subquery that has them)."""
    return or_((row.status == constant(OutboxStatus.PENDING)) & (row.next_attempt_at <= now),
               (row.status == constant(OutboxStatus.SENDING)) & (row.claimed_until < now))


def mark_sent(db: DB, outbox_id: int, signal_timestamp: int | None, attempt: int | None = None) -> None:
    """The reply is out. With ``attempt`` (the claim's token) only the sender holding the claim marks it."""
    db.connection().execute(_mark_sent(attempt is not None),
                            {"oid": outbox_id, "now": tx_now(db), "ts": signal_timestamp, "attempt": attempt})


class MarkedSent(NamedTuple):
    due_head: int | None  # the recipient's next reply, if it may go now
    also: Any  # the value of the caller's extra column


def mark_sent_then_due_head(db: DB, row: Claimed, signal_timestamp: int | None, *,
                            also: ColumnElement[Any] | None = None, also_params: dict[str, Any] | None = None
                            ) -> MarkedSent | None:
    """:func:`mark_sent` (fenced by the claim) and :func:`due_head` of the row's recipient in one statement:
    the reply that waited behind this one, if it may go now; None when the claim was lost (nothing was
    marked). ``also``: one more column the same statement returns (a question another module asks at the
    same moment, cached by its asker), with its parameters."""
    head = db.connection().execute(_mark_sent_returning(also), {
        "oid": row.id, "now": tx_now(db), "ts": signal_timestamp, "attempt": row.attempts, "to": row.recipient,
        **(also_params or {}),
    }).first()
    if head is None:
        return None
    return MarkedSent(int(head.due_head) if head.due_head is not None else None,
                      head[1] if also is not None else None)


@cache
def _mark_sent_returning(also: ColumnElement[Any] | None) -> Executable:
    stmt = _mark_sent(True, True)
    return stmt.returning(also) if also is not None else stmt  # type: ignore[attr-defined]


@dataclass(frozen=True)
class RetryPlan:
    delay: float | None  # None: given up


def mark_failed_attempt(
    db: DB, row: Claimed, error: str, *, retryable: bool, max_age: float, retry_after: float | None = None
) -> RetryPlan:
    """Record a failed send; schedule another try unless the error is final or the reply is too old."""
    now = tx_now(db)
    too_old = (now - row.created_at).total_seconds() > max_age
    if not retryable or too_old:
        db.execute(
            update(Outbox).where(Outbox.id == row.id, Outbox.attempts == row.attempts)
            .values(status=OutboxStatus.FAILED, last_error=error[:2000], claimed_until=None)
            .execution_options(synchronize_session=False)
        )
        return RetryPlan(None)
    delay = backoff(row.attempts, retry_after)
    db.execute(  # fenced: a sender whose claim lapsed must not hand back a row another one is sending
        update(Outbox).where(Outbox.id == row.id, Outbox.attempts == row.attempts)
        .values(status=OutboxStatus.PENDING, last_error=error[:2000], claimed_until=None,
                next_attempt_at=now + timedelta(seconds=delay))
        .execution_options(synchronize_session=False)
    )
    return RetryPlan(delay)


def overdue(db: DB, *, grace: float, limit: int = 200, now: datetime | None = None) -> list[int]:
    """Rows whose wake-up should have fired by now: the sweep sends them again."""
    now = now or tx_now(db)
    cutoff = now - timedelta(seconds=grace)
    stmt = (
        select(Outbox.id)
        .where(
            or_(
                (Outbox.status == OutboxStatus.PENDING) & (Outbox.next_attempt_at < cutoff),
                (Outbox.status == OutboxStatus.SENDING) & (Outbox.claimed_until < now),
            )
        )
        .order_by(Outbox.id)
        .limit(limit)
    )
    return list(db.execute(stmt).scalars())


def unsent_for_inbox(db: DB, inbox_key: str) -> list[int]:
    stmt = select(Outbox.id).where(
        Outbox.inbox_key == inbox_key, Outbox.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING])
    )
    return list(db.execute(stmt).scalars())


def claim_next_for(db: DB, recipient: str, now: datetime | None = None, hold: float = CLAIM_SECONDS) -> Outbox | None:
    """Claim the oldest unsent reply to ``recipient`` if it is due; replies to one person go out in order.

    A head row waiting out a backoff holds back the rows behind it: the failure (a rate limit, Signal down)
    would hit them too, and a phone should never see the second half of a story first.
    """
    return db.execute(_take("head", True), _params(now or tx_now(db), hold, to=recipient)).scalar_one_or_none()


@cache
def _due_head() -> Executable:
    return _due_head_of(bindparam("recipient"))


def due_head(db: DB, recipient: str, now: datetime | None = None) -> int | None:
    """The oldest unsent reply to ``recipient`` if it may be sent now: pending and out of its backoff, or
    held by a sender whose claim has lapsed. A sender leaving the lane looks once more with this."""
    return db.connection().execute(_due_head(), {"recipient": recipient, "now": now or tx_now(db)}).scalar()


def mark_parts_sent(db: DB, outbox_id: int, parts_sent: int, signal_timestamp: int | None,
                    attempt: int | None = None) -> None:
    """Remember progress through a multi-part reply, so a retry never re-sends a part the phone has. With
    ``attempt`` (the claim's token) a sender that lost the row cannot move another's progress back."""
    fence = [Outbox.attempts == attempt] if attempt is not None else []
    db.execute(
        update(Outbox)
        .where(Outbox.id == outbox_id, Outbox.status == OutboxStatus.SENDING, *fence)
        .values(parts_sent=parts_sent, signal_timestamp=signal_timestamp)
        .execution_options(synchronize_session=False)
    )


def is_own_send(db: DB, recipient: str, timestamp: int, text: str, *, window: float = 3600.0) -> bool:
    """True when a Note to Self message is one of our own replies seen again (same timestamp or text).

    signal-cli does not echo its own sends, but a second client of the same account would see them as
    sync transcripts; they must never become commands.
    """
    since = tx_now(db) - timedelta(seconds=window)
    rows = db.execute(
        select(Outbox.signal_timestamp, Outbox.text)
        .where(Outbox.recipient == recipient, Outbox.created_at >= since,
               Outbox.status.in_([OutboxStatus.SENDING, OutboxStatus.SENT]))
    ).all()
    wanted = text.strip()
    for sent_ts, body in rows:
        if sent_ts == timestamp:
            return True
        if wanted and wanted in {p.text.strip() for p in chunking.plan(body).parts} | {body.strip()}:
            return True
    return False
