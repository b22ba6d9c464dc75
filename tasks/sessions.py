"""``session.start`` and ``session.resume``: run on the session's host queue, where its directory lives.

Whatever goes wrong, the command ends in a reply and its inbox row HANDLED: an unexpected error is answered
as a failed start or resume (a retry by the sweep would only fail again, silently, while the messages
behind it wait). Only when even that answer cannot be written does the error propagate, and the sweep
brings the message back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.orm import Session as DB

from claude_signal import hostops, runtime
from claude_signal.celery import app
from claude_signal.db.models import Session, SessionStatus
from claude_signal.wakeups import SESSION_RESUME, SESSION_START, Wakeups
from tasks.commands import release_successors

log = logging.getLogger(__name__)

HostStep = Callable[[DB, str, str, hostops.Precheck, str | None], Wakeups]


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
            wakeups = step(db, session_id, inbox_key, check or hostops.Precheck(None, "gone"), task_id)
    except Exception:  # answered below: a silent retry would only fail again
        log.exception("%s of session %s failed", step.__name__, session_id)
        with runtime.transaction() as db:
            wakeups = step(db, session_id, inbox_key, hostops.Precheck(None, hostops.INTERNAL_ERROR), task_id)
        runtime.publish(app, wakeups)
        release_successors(inbox_key)
        return "error"
    runtime.publish(app, wakeups)
    release_successors(inbox_key)
    return "ok"


@app.task(name=SESSION_START, bind=True)
def start(self, session_id: str, inbox_key: str) -> str:  # type: ignore[no-untyped-def]
    return _run(hostops.start, SessionStatus.CREATED, session_id, inbox_key, self.request.id)


@app.task(name=SESSION_RESUME, bind=True)
def resume(self, session_id: str, inbox_key: str) -> str:  # type: ignore[no-untyped-def]
    return _run(hostops.resume, SessionStatus.PAUSED, session_id, inbox_key, self.request.id)
