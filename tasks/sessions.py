"""``session.start``, ``session.resume`` and ``session.get_file``: run on the session's host queue, where its
directory lives.

Whatever goes wrong, the command ends in a reply and its inbox row HANDLED: an unexpected error is answered
as a failed start or resume (a retry by the sweep would only fail again, silently, while the messages
behind it wait). Only when even that answer cannot be written does the error propagate, and the sweep
brings the message back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.orm import Session as DB

from claude_signal.celery import app
from claude_signal.core import files_out
from claude_signal.core import session_start as hostops
from claude_signal.core.inbox import mark_handled
from claude_signal.db.models import Inbox, Session
from claude_signal.rules import commands
from claude_signal.rules.states import InboxStatus, SessionStatus
from claude_signal.wire.inbound import InboundMessage
from claude_signal.wire.queues import SESSION_GET_FILE, SESSION_RESUME, SESSION_START
from claude_signal.worker import context as runtime
from tasks.commands import release_successors

log = logging.getLogger(__name__)

HostStep = Callable[[DB, str, str, hostops.Precheck, str | None], object]


def _load(session_id: str, wanted: SessionStatus) -> Session | None:
    with runtime.transaction() as db:
        session = db.get(Session, session_id)
        return session if session is not None and session.status == wanted else None


def _run(step: HostStep, wanted: SessionStatus, session_id: str, inbox_key: str, task_id: str | None) -> str:
    settings = runtime.settings()
    try:
        session = _load(session_id, wanted)
        check = hostops.precheck(session.project_path, settings, settings.host) if session else None
        with runtime.transaction() as db:
            step(db, session_id, inbox_key, check or hostops.Precheck(None, "gone"), task_id)
    except Exception:  # answered below: a silent retry would only fail again
        log.exception("%s of session %s failed", step.__name__, session_id)
        with runtime.transaction() as db:
            step(db, session_id, inbox_key, hostops.Precheck(None, hostops.INTERNAL_ERROR), task_id)
        release_successors(inbox_key)
        return "error"
    release_successors(inbox_key)
    return "ok"


@app.task(name=SESSION_START, bind=True)
def start(self, session_id: str, inbox_key: str) -> str:  # type: ignore[no-untyped-def]
    return _run(hostops.start, SessionStatus.CREATED, session_id, inbox_key, self.request.id)


@app.task(name=SESSION_RESUME, bind=True)
def resume(self, session_id: str, inbox_key: str) -> str:  # type: ignore[no-untyped-def]
    return _run(hostops.resume, SessionStatus.PAUSED, session_id, inbox_key, self.request.id)


@app.task(name=SESSION_GET_FILE, bind=True)
def get_file(self, session_id: str, inbox_key: str) -> str:  # type: ignore[no-untyped-def]
    """``/get``: read the file here and answer with it (or why not); the path comes from the inbox row, so
    the task's arguments name no file."""
    settings = runtime.settings()
    with runtime.transaction() as db:
        inbox, session = db.get(Inbox, inbox_key), db.get(Session, session_id)
        if inbox is None or inbox.status != InboxStatus.RECEIVED or session is None:
            return "answered already"
        msg = InboundMessage.model_validate(inbox.payload)
        project = session.project_path
    command = commands.parse(msg.text)
    try:
        outcome = files_out.fetch(command.path, project, settings) if isinstance(command, commands.GetFile) \
            else "Usage: /get <path>"
    except Exception:  # answered: a silent retry would only fail again
        log.exception("/get in session %s failed", session_id)
        outcome = f"Could not send that file: {hostops.INTERNAL_ERROR}."
    with runtime.transaction() as db:
        files_out.deliver(db, msg, outcome, session_id)
        mark_handled(db, inbox_key)
    release_successors(inbox_key)
    return "sent" if not isinstance(outcome, str) else "refused"
