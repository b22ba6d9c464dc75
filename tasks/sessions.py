"""``session.start``, ``session.resume`` and ``session.get_file``: run on the session's host queue, where its
directory lives (:mod:`claude_signal.core.session_start`, :mod:`claude_signal.core.files_out`)."""

from __future__ import annotations

from claude_signal.celery import app
from claude_signal.core import files_out, session_start
from claude_signal.rules.states import SessionStatus
from claude_signal.wire.queues import SESSION_GET_FILE, SESSION_RESUME, SESSION_START
from claude_signal.worker import context as runtime


@app.task(name=SESSION_START, bind=True)
def start(self, session_id: str, inbox_key: str) -> str:  # type: ignore[no-untyped-def]
    return session_start.run_on_host(runtime.context(), session_start.start, SessionStatus.CREATED, session_id,
                                     inbox_key, self.request.id)


@app.task(name=SESSION_RESUME, bind=True)
def resume(self, session_id: str, inbox_key: str) -> str:  # type: ignore[no-untyped-def]
    return session_start.run_on_host(runtime.context(), session_start.resume, SessionStatus.PAUSED, session_id,
                                     inbox_key, self.request.id)


@app.task(name=SESSION_GET_FILE)
def get_file(session_id: str, inbox_key: str) -> str:  # type: ignore[no-untyped-def]
    """``/get``: the path comes from the inbox row, so the task's arguments name no file."""
    return files_out.send_file(runtime.context(), session_id, inbox_key)
