"""A turn's rows: claim the next queued prompt, record the process, stream replies, decide approvals, finish.

One RUNNING turn per session (a partial unique index makes it a database fact), the rest wait in order.
Everything the phone should see is an outbox row; everything a command on another worker can change
(cancel, approvals, stop) is a row this module polls, so the turn needs no direct line to that worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DB

from claude_signal.core import outbox
from claude_signal.core.liveness import Identity
from claude_signal.core.wakeups import Wakeups, next_turn, pending, wake, wake_sender
from claude_signal.db.clock import db_now
from claude_signal.db.models import Approval, Session, Turn, utcnow
from claude_signal.rules import replies
from claude_signal.rules.ids import new_approval_id
from claude_signal.rules.states import ApprovalStatus, SessionStatus, TurnStatus


@dataclass(frozen=True)
class ClaimedTurn:
    turn_id: int
    session_id: str
    prompt: str
    conversation: str
    project_path: str
    claude_session_id: str
    permission_mode: str
    session_version: int
    inbound_key: str | None = None
    model: str | None = None
    quiet: bool = False
    owner: str = ""


def claim_next(db: DB, session_id: str, me: Identity, lease_ttl: float) -> ClaimedTurn | None:
    """Take the oldest queued prompt of an ACTIVE session on this host, unless a turn is already running.
    The claim comes with a lease on the database's clock, which the process running the turn renews."""
    session = db.get(Session, session_id, populate_existing=True)
    if session is None or session.status != SessionStatus.ACTIVE or session.host != me.host:
        return None
    turn = db.execute(select(Turn).where(Turn.session_id == session_id, Turn.status == TurnStatus.QUEUED)
                      .order_by(Turn.id).limit(1)).scalar_one_or_none()
    if turn is None:
        return None
    now = db_now(db)
    if turn.hold_until is not None and turn.hold_until > now:
        return None  # a picture waiting for its caption; its own wake-up comes when the wait is over
    try:
        with db.begin_nested():
            won = db.execute(
                update(Turn).where(Turn.id == turn.id, Turn.status == TurnStatus.QUEUED)
                .values(status=TurnStatus.RUNNING, worker_node=me.node, started_at=now,
                        lease_expires_at=now + timedelta(seconds=lease_ttl))
                .execution_options(synchronize_session=False)
            ).rowcount
    except IntegrityError:  # another turn of this session is RUNNING
        return None
    if not won:
        return None
    return ClaimedTurn(turn.id, session.id, turn.prompt, session.conversation, session.project_path,
                       session.claude_session_id, session.permission_mode, session.version, turn.inbound_key,
                       session.model, session.quiet, session.owner)


def renew_lease(db: DB, turn_id: int, lease_ttl: float) -> bool:
    """Extend a running turn's lease; False once the turn is no longer RUNNING (recovery took it)."""
    return db.execute(
        update(Turn).where(Turn.id == turn_id, Turn.status == TurnStatus.RUNNING)
        .values(lease_expires_at=db_now(db) + timedelta(seconds=lease_ttl))
        .execution_options(synchronize_session=False)
    ).rowcount == 1


def record_process(db: DB, turn_id: int, pid: int, pgid: int, started: int | None) -> None:
    db.execute(update(Turn).where(Turn.id == turn_id)
               .values(claude_pid=pid, claude_pgid=pgid, claude_started=started)
               .execution_options(synchronize_session=False))


@dataclass(frozen=True)
class TurnSignals:
    """What the rest of the system wants from a running turn, read in one query."""

    stop: str | None  # why the turn should stop, or None
    approve_all: bool


def signals(db: DB, turn_id: int, session_id: str, session_version: int) -> TurnSignals:
    row = db.execute(
        select(Turn.cancel_requested, Turn.status, Session.status, Session.approve_all, Session.version)
        .join(Session, Session.id == Turn.session_id).where(Turn.id == turn_id)
    ).one()
    cancel, turn_status, session_status, approve_all, _version = row
    stop = None
    if cancel:
        stop = "cancelled"
    elif turn_status != TurnStatus.RUNNING or session_status != SessionStatus.ACTIVE:
        stop = "session no longer active"  # stopped, or paused by recovery (a zombie must not go on)
    return TurnSignals(stop=stop, approve_all=bool(approve_all))


def say(db: DB, turn: ClaimedTurn, key: str, text: str, *, styled: bool = False,
        attachments: dict[str, Any] | None = None) -> None:
    """Queue a message for the turn's conversation; ``key`` makes a replayed step a no-op."""
    wake_sender(db, outbox.enqueue(db, recipient=turn.conversation, text=text,
                                      dedupe_key=f"turn:{turn.turn_id}:{key}",
                                      text_mode="styled" if styled else "normal", attachments=attachments))


def open_approval(db: DB, turn: ClaimedTurn, request_id: str, tool: str, summary: str,
                  tool_input: dict[str, Any], message: Callable[[str], str] | None = None) -> str:
    """Record Claude's permission request and ask the phone (``message`` words the question, given the
    approval id); returns the approval id."""
    existing = db.execute(select(Approval.id).where(Approval.turn_id == turn.turn_id,
                                                    Approval.request_id == request_id)).scalar_one_or_none()
    if existing:
        return existing
    approval_id = new_approval_id()
    db.add(Approval(id=approval_id, turn_id=turn.turn_id, session_id=turn.session_id, request_id=request_id,
                    tool_name=tool, input_summary=summary, tool_input=tool_input, status=ApprovalStatus.PENDING,
                    created_at=utcnow()))
    db.flush()
    text = message(approval_id) if message else replies.approval_request(approval_id, summary)
    say(db, turn, f"approval:{approval_id}", text)
    return approval_id


def decisions(db: DB, approval_ids: list[str]) -> dict[str, tuple[str, str | None]]:
    """(status, reason) of each approval already decided, in one query for all of a turn's open questions."""
    if not approval_ids:
        return {}
    rows = db.execute(select(Approval.id, Approval.status, Approval.reason)
                      .where(Approval.id.in_(approval_ids), Approval.status != ApprovalStatus.PENDING)).all()
    return {approval_id: (status, reason) for approval_id, status, reason in rows}


def settle_approval(db: DB, approval_id: str, status: ApprovalStatus, reason: str, by: str) -> bool:
    return db.execute(
        update(Approval).where(Approval.id == approval_id, Approval.status == ApprovalStatus.PENDING)
        .values(status=status, reason=reason, decided_by=by, decided_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount == 1


def expire_overdue_approvals(db: DB, turn: ClaimedTurn, timeout: float) -> list[str]:
    """Deny requests nobody answered in time, and tell the user; returns the expired ids."""
    cutoff = utcnow() - timedelta(seconds=timeout)
    overdue = db.execute(select(Approval).where(Approval.turn_id == turn.turn_id,
                                                Approval.status == ApprovalStatus.PENDING,
                                                Approval.created_at < cutoff)).scalars().all()
    expired = []
    for approval in overdue:
        if settle_approval(db, approval.id, ApprovalStatus.EXPIRED, "no answer in time", "timeout"):
            say(db, turn, f"expired:{approval.id}",
                replies.approval_expired(approval.id, approval.input_summary, timeout / 60))
            expired.append(approval.id)
    return expired


@dataclass(frozen=True)
class TurnResult:
    status: TurnStatus
    summary: str
    cost_usd: float | None = None
    duration_ms: int | None = None
    answer: str | None = None  # what Claude said and did, for /export
    reached_claude: bool = True  # False for a turn refused before it ran (the budget): not one of the session's


def finish(db: DB, turn: ClaimedTurn, result: TurnResult) -> Wakeups:
    """Close the turn (only if still RUNNING: recovery may have interrupted it) and wake the next one."""
    wakeups = pending(db)
    closed = db.execute(
        update(Turn).where(Turn.id == turn.turn_id, Turn.status == TurnStatus.RUNNING)
        .values(status=result.status, finished_at=utcnow(), result_summary=result.summary[:4000],
                cost_usd=result.cost_usd, duration_ms=result.duration_ms, claude_pgid=None, lease_expires_at=None,
                answer=result.answer)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.execute(update(Turn).where(Turn.id == turn.turn_id).values(claude_pgid=None)
               .execution_options(synchronize_session=False))
    cancel_pending_approvals(db, [turn.turn_id], "turn ended")
    if closed:
        db.execute(update(Session).where(Session.id == turn.session_id)
                   .values(turn_count=Session.turn_count + (1 if result.reached_claude else 0),
                           cost_usd=Session.cost_usd + (result.cost_usd or 0.0), updated_at=utcnow())
                   .execution_options(synchronize_session=False))
        session = db.get(Session, turn.session_id)
        if session is not None:
            wake(db, next_turn(turn.session_id, session.host))
    return wakeups


def cancel_pending_approvals(db: DB, turn_ids: list[int], reason: str) -> None:
    """Questions of a turn that ended can no longer be answered: close them."""
    db.execute(update(Approval).where(Approval.turn_id.in_(turn_ids), Approval.status == ApprovalStatus.PENDING)
               .values(status=ApprovalStatus.CANCELLED, reason=reason, decided_at=utcnow())
               .execution_options(synchronize_session=False))


