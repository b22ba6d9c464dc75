"""``session.start`` and ``session.resume``: run on the session's host queue, where its directory lives."""

from __future__ import annotations

from claude_signal import hostops, runtime
from claude_signal.celery import app
from claude_signal.db.models import Session, SessionStatus
from claude_signal.wakeups import SESSION_RESUME, SESSION_START


def _load(session_id: str, wanted: SessionStatus) -> Session | None:
    with runtime.transaction() as db:
        session = db.get(Session, session_id)
        return session if session is not None and session.status == wanted else None


@app.task(name=SESSION_START, bind=True)
def start(self, session_id: str, inbox_key: str) -> str:  # type: ignore[no-untyped-def]
    settings = runtime.settings()
    session = _load(session_id, SessionStatus.CREATED)
    check = hostops.precheck(session.project_path, settings, settings.host) if session else None
    with runtime.transaction() as db:
        wakeups = hostops.start(db, session_id, inbox_key, check or hostops.Precheck(None, "gone"), self.request.id)
    runtime.publish(app, wakeups)
    return "ok"


@app.task(name=SESSION_RESUME, bind=True)
def resume(self, session_id: str, inbox_key: str) -> str:  # type: ignore[no-untyped-def]
    settings = runtime.settings()
    session = _load(session_id, SessionStatus.PAUSED)
    check = hostops.precheck(session.project_path, settings, settings.host) if session else None
    with runtime.transaction() as db:
        wakeups = hostops.resume(db, session_id, inbox_key, check or hostops.Precheck(None, "gone"),
                                 self.request.id)
    runtime.publish(app, wakeups)
    return "ok"
