"""``command.handle``'s domain: record an inbound message once, understand it, act, and queue the reply.

Everything happens in the caller's one transaction. Work that needs a particular machine (opening a
directory, running ``claude``) is handed to that host's queue as a :class:`~claude_signal.wakeups.Wakeup`,
and the inbox row stays RECEIVED until the host finishes it; everything else marks the row HANDLED here.
A redelivered message whose row is HANDLED only re-sends replies that are still unsent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Executable, Row, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DB

from claude_signal import commands as c
from claude_signal import ordering, outbox, replies, senders, workers
from claude_signal.config import Settings
from claude_signal.db.models import (
    Approval,
    ApprovalStatus,
    Conversation,
    Inbox,
    InboxStatus,
    Session,
    SessionStatus,
    Turn,
    TurnStatus,
    utcnow,
)
from claude_signal.db.upsert import insert_or_ignore, insert_or_ignore_returning
from claude_signal.ids import new_claude_session_id, new_session_id
from claude_signal.inbound import InboundMessage
from claude_signal.lifecycle import InvalidTransition, transition
from claude_signal.schedule_commands import ScheduleCommand
from claude_signal.wakeups import SESSION_RESUME, SESSION_START, Wakeup, Wakeups, host_queue, next_turn
from claude_signal.workers import host_state, host_states

log = logging.getLogger(__name__)


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


# --------------------------------------------------------------------------------------------- inbox


def record(db: DB, msg: InboundMessage) -> Row[Any]:
    """Insert the message unless its key is known; returns the row's ``status`` and ``received_at`` (new, or
    as the earlier delivery left them), the row locked until this transaction ends, so two copies handled at
    once take turns: the second finds the first's work done (PostgreSQL; SQLite runs one writer at a time)."""
    added = insert_or_ignore_returning(
        db, Inbox,
        {"key": msg.key, "sender": msg.sender, "conversation": msg.conversation, "text": msg.text,
         "kind": msg.kind, "payload": msg.model_dump(mode="json"), "status": InboxStatus.RECEIVED,
         "received_at": utcnow()},
        "key", ["status", "received_at"],
    )
    return added if added is not None else db.connection().execute(_inbox_state(), {"k": msg.key}).one()


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
    """RECEIVED → HANDLED as a compare-and-set; True when this call made the change (a claim)."""
    db.flush()
    return db.connection().execute(_mark_handled(), {"k": key, "now": utcnow()}).rowcount == 1


def reply(db: DB, wakeups: Wakeups, msg: InboundMessage, text: str, *, suffix: str = "reply") -> None:
    """Queue the answer to ``msg`` in this transaction; its dedupe key makes a second attempt a no-op."""
    wakeups.send_reply(outbox.enqueue(db, recipient=msg.conversation, text=text,
                                      dedupe_key=f"{msg.key}:{suffix}", inbox_key=msg.key))


def is_authorized(settings: Settings, msg: InboundMessage) -> bool:
    """The listener already filters; the worker checks again with the same rule (an empty list: nobody)."""
    uuid = None if senders.is_number(msg.sender) else msg.sender
    number = msg.sender_number or (msg.sender if senders.is_number(msg.sender) else None)
    if msg.sender_number and senders.is_number(msg.sender) and msg.sender != msg.sender_number:
        return False  # two numbers for one sender: not a frame the listener makes
    return senders.authorized(settings.authorized, number, uuid)


def _group_business(db: DB, msg: InboundMessage) -> bool:
    """A group is the bot's business when a live session is bound to it, or when the message is an explicit
    command or answers one of the bot's questions; the owner's chatter in other groups is never answered."""
    if msg.kind == "message" and msg.text.lstrip().startswith("/"):
        return True
    session = current_session(db, msg.conversation)
    if session is not None and session.status != SessionStatus.TERMINATED:
        return True
    target = msg.reaction_target_timestamp if msg.kind == "reaction" else msg.quote_timestamp
    if target:  # an answer to the bot's own question in this group
        from claude_signal.conversation_control import approval_for_message

        return approval_for_message(db, target) is not None
    return False


# ------------------------------------------------------------------------------------------ dispatch


def handle(db: DB, msg: InboundMessage, ctx: Context) -> Wakeups:
    """Handle one inbound message exactly once; safe to call again for the same message."""
    wakeups = Wakeups()
    row = record(db, msg)
    if row.status == InboxStatus.HANDLED:
        for outbox_id in outbox.unsent_for_inbox(db, msg.key):
            wakeups.send_reply(outbox_id)
        return wakeups
    order = ordering.verdict(db, msg, row.received_at) if ctx.keep_order else ordering.Verdict.READY
    if order is ordering.Verdict.WAIT:
        raise NotYet(msg.after)
    if not is_authorized(ctx.settings, msg):
        log.warning("dropped message %s from unauthorized sender %s", msg.key, msg.sender)
        mark_handled(db, msg.key)
        return wakeups
    if msg.note_to_self and outbox.is_own_send(db, msg.conversation, msg.timestamp, msg.text):
        log.info("ignored %s: it is the bot's own reply seen again in Note to Self", msg.key)
        mark_handled(db, msg.key)
        return wakeups
    if msg.group_id and not _group_business(db, msg):
        log.info("ignored %s in a group with no session: not a command", msg.key)
        mark_handled(db, msg.key)
        return wakeups
    if msg.kind == "edit":
        reply(db, wakeups, msg, "Edited messages are not sent to Claude; send the corrected text as a new message.")
        mark_handled(db, msg.key)
        return wakeups
    from claude_signal.answers import answer_pending
    from claude_signal.conversation_control import answer_by_message

    if msg.kind == "message" and answer_pending(db, msg, wakeups):  # Claude's question or plan, answered
        mark_handled(db, msg.key)
        return wakeups

    answer = answer_by_message(db, msg) if msg.kind == "reaction" or msg.quote_timestamp else None
    if answer is not None:
        reply(db, wakeups, msg, answer)
        mark_handled(db, msg.key)
        return wakeups
    if msg.kind == "reaction":
        log.info("ignored reaction %s from %s", msg.reaction_emoji, msg.sender)
        mark_handled(db, msg.key)
        return wakeups
    from claude_signal.attachments_in import refusal

    if msg.attachments and (refused := refusal(msg)):
        reply(db, wakeups, msg, refused)
        mark_handled(db, msg.key)
        return wakeups
    command = c.parse(msg.text)
    if isinstance(command, c.Prompt) and (order is ordering.Verdict.RELEASED
                                          or ordering.follows_failed_switch(db, msg)):
        lost = order is ordering.Verdict.RELEASED
        reply(db, wakeups, msg, replies.prompt_predecessor_lost() if lost else replies.prompt_after_failed_switch(),
              suffix=ordering.FAILED_SWITCH)
        mark_handled(db, msg.key)
        return wakeups
    if not isinstance(command, c.Prompt):  # a command lets a picture waiting for its caption go first
        from claude_signal import captions

        captions.release(db, current_session(db, msg.conversation), wakeups)
    try:
        deferred = _dispatch(db, msg, command, ctx, wakeups)
    except Reply as answer:
        reply(db, wakeups, msg, str(answer))
        deferred = False
    except InvalidTransition as invalid:
        reply(db, wakeups, msg, str(invalid))
        deferred = False
    if not deferred:
        mark_handled(db, msg.key)
    return wakeups


def _dispatch(db: DB, msg: InboundMessage, command: c.Command, ctx: Context, wakeups: Wakeups) -> bool:
    """Run the command; True when a host will finish it (and reply) later."""
    match command:
        case c.SessionStart(target):
            return _start(db, msg, target, ctx, wakeups)
        case c.SessionResume(ref):
            return _resume(db, msg, ref, ctx, wakeups)
        case c.SessionStop(ref):
            _stop(db, msg, ref, ctx, wakeups)
        case c.SessionList(include_ended):
            reply(db, wakeups, msg, _list(db, msg, include_ended))
        case c.Help():
            reply(db, wakeups, msg, replies.HELP)
        case c.Status():
            reply(db, wakeups, msg, _status(db, msg, ctx))
        case c.Hosts():
            reply(db, wakeups, msg, _hosts(db, ctx))
        case c.Prompt(text):
            _prompt(db, msg, text, ctx, wakeups)
        case c.Usage(text):
            reply(db, wakeups, msg, text)
        case c.Unknown(word):
            reply(db, wakeups, msg, replies.unknown_command(word, msg.text))
        case c.GetFile() | c.Export() | c.Cost():
            from claude_signal import session_outputs

            return session_outputs.run(db, msg, command, ctx, wakeups)
        case ScheduleCommand():
            from claude_signal.schedules import run_command

            reply(db, wakeups, msg, run_command(db, msg, command, ctx.settings))
        case _:
            from claude_signal import conversation_control  # turn-level commands

            conversation_control.run(db, msg, command, ctx, wakeups)
    return False


# -------------------------------------------------------------------------------------- lookups


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


def current_session(db: DB, conversation: str) -> Session | None:
    return db.execute(_current_session(), {"c": conversation}).scalar_one_or_none()


@cache
def _current_session() -> Executable:  # built once: most messages ask
    return (select(Session).join(Conversation, Conversation.current_session_id == Session.id)
            .where(Conversation.id == bindparam("c")))


def set_current(db: DB, conversation: str, session_id: str) -> None:
    """Plain messages in ``conversation`` go to this session, and its answers come back there (a session
    resumed in a group answers in that group from then on)."""
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


# ------------------------------------------------------------------------------------- commands


def default_host(db: DB, ctx: Context) -> str:
    """Explicit setting, else the only host there is, else the host of the worker handling this."""
    if ctx.settings.default_host:
        return ctx.settings.default_host
    states = host_states(db, lease_ttl=ctx.settings.lease_ttl)
    online = [s.host for s in states if s.online]
    if len(online) == 1:
        return online[0]
    return ctx.local_host or ctx.settings.host


def _check_host(db: DB, host: str, ctx: Context) -> workers.HostState | None:
    """The host's state; a :class:`Reply` at once when it is unknown or offline, so nothing waits for it."""
    state = host_state(db, host, lease_ttl=ctx.settings.lease_ttl)
    if host == ctx.local_host:
        return state  # this worker runs there, so the host is up whatever its last heartbeat says
    if state is None:
        raise Reply(replies.unknown_host(host, [s.host for s in host_states(db, lease_ttl=1e9)]))
    if not state.online:
        raise Reply(replies.host_offline(host, state.last_seen))
    return state


def _start(db: DB, msg: InboundMessage, target: c.Target, ctx: Context, wakeups: Wakeups) -> bool:
    existing = db.execute(select(Session).where(Session.origin_key == msg.key)).scalar_one_or_none()
    if existing is None:
        host = target.host or default_host(db, ctx)
        _check_host(db, host, ctx)
        existing = Session(
            id=new_session_id(), owner=msg.sender, conversation=msg.conversation, project_path=target.path,
            host=host, status=SessionStatus.CREATED, claude_session_id=new_claude_session_id(),
            origin_key=msg.key, version=0, created_at=utcnow(), updated_at=utcnow(),
        )
        db.add(existing)
        db.flush()
    if existing.status == SessionStatus.CREATED:
        wakeups.add(Wakeup(SESSION_START, (existing.id, msg.key), queue=host_queue(existing.host),
                           task_id=f"{msg.key}:start"))
        return True
    return False


def _resume(db: DB, msg: InboundMessage, ref: str | None, ctx: Context, wakeups: Wakeups) -> bool:
    session = find_session(db, msg, ref) if ref else current_session(db, msg.conversation)
    if session is None:
        raise Reply(replies.no_current_session())
    status = SessionStatus(session.status)
    if status is SessionStatus.ACTIVE:
        set_current(db, msg.conversation, session.id)
        raise Reply(replies.already_active(view(session)))
    if status is not SessionStatus.PAUSED:
        raise InvalidTransition(session, SessionStatus.ACTIVE)
    _check_host(db, session.host, ctx)
    wakeups.add(Wakeup(SESSION_RESUME, (session.id, msg.key), queue=host_queue(session.host),
                       task_id=f"{msg.key}:resume"))
    return True


def _stop(db: DB, msg: InboundMessage, ref: str | None, ctx: Context, wakeups: Wakeups) -> None:
    session = find_session(db, msg, ref) if ref else current_session(db, msg.conversation)
    if session is None:
        raise Reply(replies.no_current_session())
    if session.status == SessionStatus.TERMINATED:
        raise Reply(replies.already_stopped(session.id))
    transition(db, session.id, SessionStatus.TERMINATED, reason=f"stopped by {msg.sender}", task_id=ctx.task_id)
    stop_turns(db, session.id)
    reply(db, wakeups, msg, replies.stopped(view(session)))


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


def _list(db: DB, msg: InboundMessage, include_ended: bool) -> str:
    stmt = visible_sessions(db, msg).order_by(Session.created_at.desc()).limit(30)
    if not include_ended:
        stmt = stmt.where(Session.status != SessionStatus.TERMINATED)
    current = current_session(db, msg.conversation)
    current_id = current.id if current else None
    views = [view(s, current=s.id == current_id) for s in db.execute(stmt).scalars()]
    return replies.session_list(views, include_ended=include_ended)


def _status(db: DB, msg: InboundMessage, ctx: Context) -> str:
    session = current_session(db, msg.conversation)
    if session is None:
        return replies.no_current_session()
    running, queued, pending = db.connection().execute(_turn_state(), {"s": session.id}).one()
    wait = _slot_wait(db, session.host, ctx) if queued and not running else None
    from claude_signal.schedules import next_run_line

    return replies.status(view(session, current=True), running=running and replies.clip(running, 80),
                          queued=queued, pending_approvals=pending, mode=session.permission_mode,
                          approve_all=session.approve_all, slot_wait=wait,
                          next_scheduled=next_run_line(db, session.id, ctx.settings))


@cache
def _turn_state() -> Executable:
    """A session's running prompt, queued turns and open questions, in one statement built once."""
    turn, approval = Turn.__table__, Approval.__table__
    session = bindparam("s")
    running = select(turn.c.prompt).where(turn.c.session_id == session, turn.c.status == TurnStatus.RUNNING)
    queued = select(func.count()).where(turn.c.session_id == session, turn.c.status == TurnStatus.QUEUED)
    pending = select(func.count()).where(approval.c.session_id == session,
                                         approval.c.status == ApprovalStatus.PENDING)
    return select(running.limit(1).scalar_subquery(), queued.scalar_subquery(), pending.scalar_subquery())


def _slot_wait(db: DB, host: str, ctx: Context) -> str | None:
    """Why a prompt cannot start now although its session is idle: every turn slot on its host is taken."""
    state = host_state(db, host, lease_ttl=ctx.settings.lease_ttl)
    if state is None or not state.slots or state.running < state.slots:
        return None
    return replies.waiting_for_slot(host, state.running)


def _hosts(db: DB, ctx: Context) -> str:
    states = host_states(db, lease_ttl=ctx.settings.lease_ttl)
    return replies.hosts([replies.HostView(s.host, s.online, s.workers, s.active_sessions, s.last_seen, s.slots,
                                           s.running) for s in states])


def _prompt(db: DB, msg: InboundMessage, text: str, ctx: Context, wakeups: Wakeups) -> None:
    session = current_session(db, msg.conversation)
    if session is None:
        raise Reply(replies.no_current_session())
    status = SessionStatus(session.status)
    notes = []
    if status is SessionStatus.PAUSED:
        _check_host(db, session.host, ctx)
        try:
            with db.begin_nested():
                transition(db, session.id, SessionStatus.ACTIVE, reason=f"resumed by a message from {msg.sender}",
                           task_id=ctx.task_id, expected_from=frozenset({SessionStatus.PAUSED}))
        except IntegrityError:  # another session became ACTIVE in this directory meanwhile
            raise Reply(replies.directory_taken("another session", session.project_path)) from None
        notes.append(replies.auto_resumed(session.id))
    elif status is not SessionStatus.ACTIVE:
        raise Reply(replies.not_accepting_prompts(session.id, status))
    from claude_signal import captions

    if not msg.files and text.strip() and captions.add_caption(db, session, text, wakeups):
        return  # the caption of the picture sent just before: that turn runs with it
    captions.release(db, session, wakeups)  # anything else lets a waiting picture go first
    ahead = db.execute(select(func.count()).select_from(Turn).where(
        Turn.session_id == session.id, Turn.status.in_([TurnStatus.QUEUED, TurnStatus.RUNNING]))).scalar_one()
    hold = captions.hold_until(db, ctx.settings.caption_wait) if captions.is_lone_picture(msg) else None
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
        reply(db, wakeups, msg, "\n".join(notes))
    wakeups.add(captions.expiry_wakeup(session, ctx.settings.caption_wait) if hold is not None
                else next_turn(session.id, session.host))
