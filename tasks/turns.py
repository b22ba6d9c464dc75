"""``session.prompt``: run the session's next queued turn, on the turn plane of the session's host."""

from __future__ import annotations

from claude_signal.celery import app
from claude_signal.core import run_turn as turn_runner
from claude_signal.core import turn_state as turns
from claude_signal.wire.queues import SESSION_PROMPT
from claude_signal.worker import context as runtime


@app.task(name=SESSION_PROMPT, bind=True)
def prompt(self, session_id: str) -> str:  # type: ignore[no-untyped-def]
    settings = runtime.settings()
    me = runtime.identity(self.request.hostname)
    with runtime.transaction() as db:
        claimed = turns.claim_next(db, session_id, me, settings.lease_ttl)
    if claimed is None:
        return "nothing to run"
    turn_runner.run(claimed, runtime.context())
    return "done"
