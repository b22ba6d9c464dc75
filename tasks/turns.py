"""``session.prompt``: run the session's next queued turn, on the turn plane of the session's host."""

from __future__ import annotations

from claude_signal import runtime, turn_runner, turns
from claude_signal.celery import app
from claude_signal.wakeups import SESSION_PROMPT


@app.task(name=SESSION_PROMPT, bind=True)
def prompt(self, session_id: str) -> str:  # type: ignore[no-untyped-def]
    settings = runtime.settings()
    me = runtime.identity(self.request.hostname)
    with runtime.transaction() as db:
        claimed = turns.claim_next(db, session_id, me, settings.lease_ttl)
    if claimed is None:
        return "nothing to run"
    runtime.publish(app, turn_runner.run(claimed, settings))
    return "done"
