"""Session start and resume, the part that must run on the session's own host.

Checks that touch the machine (the directory, ``claude --version``) run first, outside any transaction;
then one transaction moves the session, records the new owner and lease, makes it the conversation's
current session, writes the reply and closes the inbox row.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DB

from claude_signal.config import Settings
from claude_signal.core import releases
from claude_signal.core.conversation import set_current, view
from claude_signal.core.inbox import mark_handled
from claude_signal.core.lifecycle import transition
from claude_signal.core.outbox import enqueue
from claude_signal.core.unit_of_work import TaskContext
from claude_signal.core.wakeups import Wakeups, next_turn, pending, wake, wake_sender
from claude_signal.db.models import Inbox, Session
from claude_signal.host.project_paths import ClaudeUnavailable, PathRejected, check_claude, resolve_project
from claude_signal.rules import replies
from claude_signal.rules.states import SessionStatus
from claude_signal.wire.inbound import InboundMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Precheck:
    """What the host found: the resolved directory, or why the session cannot run here."""

    path: Path | None
    problem: str | None


INTERNAL_ERROR = "something went wrong on my side (it is logged); please try again"


def precheck(raw_path: str, settings: Settings, host: str) -> Precheck:
    try:
        path = resolve_project(raw_path, settings.project_roots)
        check_claude(settings.claude_bin, host)
    except (PathRejected, ClaudeUnavailable) as why:
        return Precheck(None, str(why))
    except (ValueError, OSError) as error:  # e.g. a NUL byte in the path, an unreadable directory
        return Precheck(None, f"that path cannot be used ({type(error).__name__})")
    return Precheck(path, None)


def transcript_path(cwd: str, claude_session_id: str) -> Path:
    """Where Claude keeps a conversation: ``<config dir>/projects/<cwd, non-alphanumerics as '-'>/<id>.jsonl``."""
    base = Path(os.environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude")
    sanitized = "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in cwd)
    return base / "projects" / sanitized / f"{claude_session_id}.jsonl"


def _reply(db: DB, inbox_key: str, recipient: str, text: str) -> None:
    wake_sender(db, enqueue(db, recipient=recipient, text=text, dedupe_key=f"{inbox_key}:reply",
                               inbox_key=inbox_key))


def _recipient(db: DB, inbox_key: str, session: Session) -> str:
    row = db.get(Inbox, inbox_key)
    return row.conversation if row is not None else session.conversation


def _holder(db: DB, session: Session, path: str) -> Session | None:
    return db.execute(select(Session).where(Session.host == session.host, Session.project_path == path,
                                            Session.status == SessionStatus.ACTIVE,
                                            Session.id != session.id)).scalar_one_or_none()


@dataclass(frozen=True)
class Activation:
    """How the move to ACTIVE went: we own it now, another delivery of this task won, or the directory
    belongs to another session."""

    session: Session | None = None
    raced: bool = False
    holder: str | None = None


def _activate(db: DB, session: Session, path: str, *, reason: str, task_id: str | None) -> Activation:
    """CAS to ACTIVE, fenced by the version we read. The session owns no worker: only its turns hold leases."""
    holder = _holder(db, session, path)
    if holder is not None:
        return Activation(holder=holder.id)
    try:
        with db.begin_nested():
            result = transition(
                db, session.id, SessionStatus.ACTIVE, reason=reason, task_id=task_id,
                expected_version=session.version, values={"project_path": path},
            )
    except IntegrityError:  # the partial unique index: another session became ACTIVE here meanwhile
        holder = _holder(db, session, path)
        return Activation(holder=holder.id if holder else "another session")
    if result.changed:
        return Activation(session=result.session)
    return Activation(raced=True)


def start(db: DB, session_id: str, inbox_key: str, check: Precheck, task_id: str | None) -> Wakeups:
    wakeups = pending(db)
    session = db.get(Session, session_id, populate_existing=True)
    if session is None or session.status != SessionStatus.CREATED:
        mark_handled(db, inbox_key)  # a redelivery after the work was done
        return wakeups
    recipient = _recipient(db, inbox_key, session)
    text: str
    if check.problem is not None or check.path is None:
        transition(db, session.id, SessionStatus.TERMINATED, reason=f"start failed: {check.problem}",
                   task_id=task_id)
        text = replies.start_failed(session.project_path, check.problem or "unknown problem")
    else:
        path = str(check.path)
        outcome = _activate(db, session, path, reason="started", task_id=task_id)
        if outcome.raced:
            return wakeups  # a second delivery of this task started it; that one replied
        if outcome.session is None:
            transition(db, session.id, SessionStatus.TERMINATED, reason="directory taken", task_id=task_id)
            text = replies.directory_taken(outcome.holder or "another session", path)
        else:
            set_current(db, session.conversation, session.id)
            text = replies.started(view(outcome.session))
    _reply(db, inbox_key, recipient, text)
    mark_handled(db, inbox_key)
    return wakeups


def resume(db: DB, session_id: str, inbox_key: str, check: Precheck, task_id: str | None) -> Wakeups:
    """The inbox row is claimed first (RECEIVED → HANDLED): a second delivery, or the sweep that refused the
    resume while this host looked gone (:mod:`claude_signal.core.stranded`), has claimed it, and this does nothing."""
    wakeups = pending(db)
    inbox = db.get(Inbox, inbox_key)
    if inbox is None or not mark_handled(db, inbox_key):
        return wakeups
    session = db.get(Session, session_id, populate_existing=True)
    if session is None:
        return wakeups
    msg = InboundMessage.model_validate(inbox.payload)
    if session.status != SessionStatus.PAUSED:
        text = _not_paused(db, msg.conversation, session)
    elif check.problem is not None or check.path is None:
        text = replies.resume_failed(session.id, check.problem or "unknown problem")
    else:
        outcome = _activate(db, session, str(check.path), reason="resumed", task_id=task_id)
        active = outcome.session
        if outcome.raced:  # a prompt resumed it or /session stop ended it meanwhile: say what it is now
            now = db.get(Session, session.id, populate_existing=True)
            assert now is not None
            text = _not_paused(db, msg.conversation, now)
        elif active is None:
            text = replies.directory_taken(outcome.holder or "another session", str(check.path))
        else:
            set_current(db, msg.conversation, session.id)
            missing = session.turn_count > 0 and not transcript_path(
                active.project_path, active.claude_session_id).exists()
            text = replies.resumed(view(active), transcript_missing=missing)
            # Messages that queued up while the session was paused run now, in order.
            wake(db, next_turn(session.id, session.host))
    _reply(db, inbox_key, msg.conversation, text)
    return wakeups


def _not_paused(db: DB, conversation: str, session: Session) -> str:
    """The answer to a resume of a session that is no longer PAUSED."""
    if session.status == SessionStatus.ACTIVE:
        set_current(db, conversation, session.id)
        return replies.already_active(view(session))
    return replies.invalid_transition(session.id, SessionStatus(session.status), SessionStatus.ACTIVE)


HostStep = Callable[[DB, str, str, Precheck, str | None], object]


def _load(ctx: TaskContext, session_id: str, wanted: SessionStatus) -> Session | None:
    with ctx.transaction() as db:
        session = db.get(Session, session_id)
        return session if session is not None and session.status == wanted else None


def run_on_host(ctx: TaskContext, step: HostStep, wanted: SessionStatus, session_id: str, inbox_key: str,
                task_id: str | None) -> str:
    """``session.start`` and ``session.resume`` here, on the session's host: checks that touch the machine
    first, then one transaction; whatever goes wrong ends in a reply, and the messages behind it go on."""
    settings = ctx.settings
    try:
        session = _load(ctx, session_id, wanted)
        check = precheck(session.project_path, settings, settings.host) if session else None
        with ctx.transaction() as db:
            step(db, session_id, inbox_key, check or Precheck(None, "gone"), task_id)
    except Exception:  # answered below: a silent retry would only fail again
        log.exception("%s of session %s failed", step.__name__, session_id)
        with ctx.transaction() as db:
            step(db, session_id, inbox_key, Precheck(None, INTERNAL_ERROR), task_id)
        releases.release_successors(ctx, inbox_key)
        return "error"
    releases.release_successors(ctx, inbox_key)
    return "ok"
