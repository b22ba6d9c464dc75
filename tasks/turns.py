"""``session.prompt``: run the session's next queued turn, on the turn plane of the session's host."""

from __future__ import annotations

import time

from claude_signal import runtime, turn_runner, turns
from claude_signal.celery import app
from claude_signal.wakeups import SESSION_PROMPT
from tasks import outbox as sender


@app.task(name=SESSION_PROMPT, bind=True)
def prompt(self, session_id: str) -> str:  # type: ignore[no-untyped-def]
    settings = runtime.settings()
    me = runtime.identity(self.request.hostname)
    with runtime.transaction() as db:
        claimed = turns.claim_next(db, session_id, me, settings.lease_ttl)
    if claimed is None:
        return "nothing to run"
    wakeups = turn_runner.run(claimed, settings)
    # The turn's last words (its answer and cost line) are posted from here when this machine reaches
    # Signal: their wake-ups are not out yet, so nobody else sends them meanwhile (a crash leaves them to
    # the sweep, as a lost wake-up would).
    with runtime.transaction() as db:
        mine = sender.claim_here(db, wakeups, settings)
    claimed_at = time.monotonic()
    runtime.publish(app, wakeups)
    posted = sender.post_here(settings, mine, claimed_at) if mine else []
    if posted:
        with runtime.transaction() as db:
            after = sender.mark_posted(db, posted)
        runtime.publish(app, after)
    return "done"
