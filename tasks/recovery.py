"""``recovery.run``: pause orphaned sessions, kill what they left on this host, re-send lost wake-ups."""

from __future__ import annotations

from claude_signal import recovery, runtime, sweep
from claude_signal.celery import app
from claude_signal.wakeups import RECOVERY_RUN, Wakeups


@app.task(name=RECOVERY_RUN, bind=True)
def run(self, reason: str = "sweep") -> dict:  # type: ignore[no-untyped-def]
    host = runtime.settings().host
    wakeups = Wakeups()
    with runtime.transaction() as db:
        paused, notices = recovery.recover_orphans(db, task_id=self.request.id)
        leftovers = recovery.leftover_processes(db, host)
    for outbox_id in notices:
        wakeups.send_reply(outbox_id)
    cleared = recovery.reap_leftovers(leftovers)
    with runtime.transaction() as db:
        recovery.clear_process_records(db, cleared)
        wakeups.extend(sweep.due(db))
    runtime.publish(app, wakeups)
    return {"reason": reason, "paused": [p.session_id for p in paused], "reaped": len(cleared),
            "rewoken": len(wakeups)}
