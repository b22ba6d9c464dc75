"""``command.handle``'s domain: record an inbound message once, understand it, act, and queue the reply.

Everything happens in the caller's one transaction. Work that needs a particular machine (opening a
directory, running ``claude``) is handed to that host's queue as a :class:`~claude_signal.core.wakeups.Wakeup`,
and the inbox row stays RECEIVED until the host finishes it; everything else marks the row HANDLED here.
A redelivered message whose row is HANDLED only re-sends replies that are still unsent.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DB

from claude_signal.core import liveness as workers
from claude_signal.core.conversation import (
    Context,
    Reply,
    current_session,
    find_session,
    reply,
    set_current,
    turn_state,
    view,
    visible_sessions,
)
from claude_signal.core.lifecycle import InvalidTransition, transition
from claude_signal.core.liveness import host_state, host_states
from claude_signal.core.wakeups import Wakeup, next_turn, wake
from claude_signal.db.models import Approval, Session, Turn, utcnow
from claude_signal.rules import commands as c
from claude_signal.rules import replies
from claude_signal.rules.ids import new_claude_session_id, new_session_id
from claude_signal.rules.states import ApprovalStatus, SessionStatus, TurnStatus
from claude_signal.wire.inbound import InboundMessage
from claude_signal.wire.queues import SESSION_RESUME, SESSION_START, host_queue


def default_host(db: DB, ctx: Context) -> str:
    """Explicit setting, else the only host there is, else the host of the worker handling this."""
    if ctx.settings.default_host:
        return ctx.settings.default_host
    states = host_states(db, lease_ttl=ctx.settings.lease_ttl)
    online = [s.host for s in states if s.online]
    if len(online) == 1:
        return online[0]
    return ctx.local_host or ctx.settings.host


def check_host(db: DB, host: str, ctx: Context) -> workers.HostState | None:
    """The host's state; a :class:`Reply` at once when it is unknown or offline, so nothing waits for it."""
    state = host_state(db, host, lease_ttl=ctx.settings.lease_ttl)
    if host == ctx.local_host:
        return state  # this worker runs there, so the host is up whatever its last heartbeat says
    if state is None:
        raise Reply(replies.unknown_host(host, [s.host for s in host_states(db, lease_ttl=1e9)]))
    if not state.online:
        raise Reply(replies.host_offline(host, state.last_seen))
    return state


def start(db: DB, msg: InboundMessage, target: c.Target, ctx: Context) -> bool:
    existing = db.execute(select(Session).where(Session.origin_key == msg.key)).scalar_one_or_none()
    if existing is None:
        host = target.host or default_host(db, ctx)
        check_host(db, host, ctx)
        existing = Session(
            id=new_session_id(), owner=msg.sender, conversation=msg.conversation, project_path=target.path,
            host=host, status=SessionStatus.CREATED, claude_session_id=new_claude_session_id(),
            origin_key=msg.key, version=0, created_at=utcnow(), updated_at=utcnow(),
        )
        db.add(existing)
        db.flush()
    if existing.status == SessionStatus.CREATED:
        wake(db, Wakeup(SESSION_START, (existing.id, msg.key), queue=host_queue(existing.host),
                           task_id=f"{msg.key}:start"))
        return True
    return False


def resume(db: DB, msg: InboundMessage, ref: str | None, ctx: Context) -> bool:
    session = find_session(db, msg, ref) if ref else current_session(db, msg.conversation)
    if session is None:
        raise Reply(replies.no_current_session())
    status = SessionStatus(session.status)
    if status is SessionStatus.ACTIVE:
        set_current(db, msg.conversation, session.id)
        raise Reply(replies.already_active(view(session)))
    if status is not SessionStatus.PAUSED:
        raise InvalidTransition(session, SessionStatus.ACTIVE)
    check_host(db, session.host, ctx)
    wake(db, Wakeup(SESSION_RESUME, (session.id, msg.key), queue=host_queue(session.host),
                       task_id=f"{msg.key}:resume"))
    return True


def stop(db: DB, msg: InboundMessage, ref: str | None, ctx: Context) -> None:
    session = find_session(db, msg, ref) if ref else current_session(db, msg.conversation)
    if session is None:
        raise Reply(replies.no_current_session())
    if session.status == SessionStatus.TERMINATED:
        raise Reply(replies.already_stopped(session.id))
    transition(db, session.id, SessionStatus.TERMINATED, reason=f"stopped by {msg.sender}", task_id=ctx.task_id)
    stop_turns(db, session.id)
    reply(db, msg, replies.stopped(view(session)))


def stop_turns(db: DB, session_id: str) -> None:
    """Queued turns are cancelled; a running one is asked to stop (its worker interrupts and reaps it)."""
    db.execute(update(Turn).where(Turn.session_id == session_id, Turn.status == TurnStatus.QUEUED)
               .values(status=TurnStatus.CANCELLED, finished_at=utcnow(), result_summary="session stopped")
               .execution_options(synchronize_session=False))
    db.execute(update(Turn).where(Turn.session_id == session_id, Turn.status == TurnStatus.RUNNING)
               .values(cancel_requested=True).execution_options(synchronize_session=False))
    db.execute(update(Approval).where(Approval.session_id == session_id, Approval.status == ApprovalStatus.PENDING)
               .values(status=ApprovalStatus.CANCELLED, reason="session stopped", decided_at=utcnow())
               .execution_options(synchronize_session=False))


def list_sessions(db: DB, msg: InboundMessage, include_ended: bool) -> str:
    stmt = visible_sessions(db, msg).order_by(Session.created_at.desc()).limit(30)
    if not include_ended:
        stmt = stmt.where(Session.status != SessionStatus.TERMINATED)
    current = current_session(db, msg.conversation)
    current_id = current.id if current else None
    views = [view(s, current=s.id == current_id) for s in db.execute(stmt).scalars()]
    return replies.session_list(views, include_ended=include_ended)


def status(db: DB, msg: InboundMessage, ctx: Context) -> str:
    session = current_session(db, msg.conversation)
    if session is None:
        return replies.no_current_session()
    running, queued, pending, scheduled = turn_state(db, session.id)
    wait = _slot_wait(db, session.host, ctx) if queued and not running else None
    from claude_signal.core.schedules import next_run_line

    return replies.status(view(session, current=True), running=running and replies.clip(running, 80),
                          queued=queued, pending_approvals=pending, mode=session.permission_mode,
                          approve_all=session.approve_all, slot_wait=wait,
                          next_scheduled=next_run_line(db, session.id, ctx.settings) if scheduled else None,
                          model=session.model, quiet=session.quiet)


def _slot_wait(db: DB, host: str, ctx: Context) -> str | None:
    """Why a prompt cannot start now although its session is idle: every turn slot on its host is taken."""
    state = host_state(db, host, lease_ttl=ctx.settings.lease_ttl)
    if state is None or not state.slots or state.running < state.slots:
        return None
    return replies.waiting_for_slot(host, state.running)


def hosts(db: DB, ctx: Context) -> str:
    states = host_states(db, lease_ttl=ctx.settings.lease_ttl)
    return replies.hosts([replies.HostView(s.host, s.online, s.workers, s.active_sessions, s.last_seen, s.slots,
                                           s.running) for s in states])


def prompt(db: DB, msg: InboundMessage, text: str, ctx: Context) -> None:
    session = current_session(db, msg.conversation)
    if session is None:
        raise Reply(replies.no_current_session())
    status = SessionStatus(session.status)
    notes = []
    if status is SessionStatus.PAUSED:
        check_host(db, session.host, ctx)
        try:
            with db.begin_nested():
                transition(db, session.id, SessionStatus.ACTIVE, reason=f"resumed by a message from {msg.sender}",
                           task_id=ctx.task_id, expected_from=frozenset({SessionStatus.PAUSED}))
        except IntegrityError:  # another session became ACTIVE in this directory meanwhile
            raise Reply(replies.directory_taken("another session", session.project_path)) from None
        notes.append(replies.auto_resumed(session.id))
    elif status is not SessionStatus.ACTIVE:
        raise Reply(replies.not_accepting_prompts(session.id, status))
    from claude_signal.core import captions

    if not msg.files and text.strip() and captions.add_caption(db, session, text):
        return  # the caption of the picture sent just before: that turn runs with it
    captions.release(db, session)  # anything else lets a waiting picture go first
    ahead = db.execute(select(func.count()).select_from(Turn).where(
        Turn.session_id == session.id, Turn.status.in_([TurnStatus.QUEUED, TurnStatus.RUNNING]))).scalar_one()
    hold = captions.hold_until(db, session.id, ctx.settings.caption_wait) if captions.is_lone_picture(msg) else None
    db.add(Turn(session_id=session.id, inbound_key=msg.key, prompt=text, status=TurnStatus.QUEUED,
                hold_until=hold, created_at=utcnow()))
    db.flush()
    if ahead:
        notes.append(replies.queued(ahead))
    elif (wait := _slot_wait(db, session.host, ctx)) is not None:
        notes.append(wait)
    if hold is not None:
        notes.append(captions.waiting_note(ctx.settings.caption_wait))
    if notes:
        reply(db, msg, "\n".join(notes))
    wake(db, captions.expiry_wakeup(session, ctx.settings.caption_wait) if hold is not None
                else next_turn(session.id, session.host))
