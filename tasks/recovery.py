"""``recovery.run``: pause orphaned sessions, kill what they left on this host, refuse starts and resumes
whose host went away, re-send lost wake-ups."""

from __future__ import annotations

from claude_signal import recovery, runtime, stranded, sweep
from claude_signal.celery import app
from claude_signal.wakeups import RECOVERY_RUN, Wakeups
from tasks.commands import release_successors


@app.task(name=RECOVERY_RUN, bind=True)
def run(self, reason: str = "sweep") -> dict:  # type: ignore[no-untyped-def]
    settings = runtime.settings()
    wakeups = Wakeups()
    with runtime.transaction() as db:
        paused, notices = recovery.recover_orphans(db, task_id=self.request.id)
        leftovers = recovery.leftover_processes(db, settings.host)
    for outbox_id in notices:
        wakeups.send_reply(outbox_id)
    cleared = recovery.reap_leftovers(leftovers)
    with runtime.transaction() as db:
        refused = stranded.refuse_stranded(db, lease_ttl=settings.lease_ttl, task_id=self.request.id)
    wakeups.extend(refused.wakeups)
    with runtime.transaction() as db:
        recovery.clear_process_records(db, cleared)
        wakeups.extend(sweep.due(db))
    runtime.publish(app, wakeups)
    for key in refused.keys:  # the messages that waited for a refused start or resume go on now
        release_successors(key)
    return {"reason": reason, "paused": [p.session_id for p in paused], "reaped": len(cleared),
            "refused": refused.keys, "rewoken": len(wakeups)}
