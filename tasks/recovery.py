"""``recovery.run``: pause orphaned sessions, kill what they left on this host, refuse starts and resumes
whose host went away, re-send lost wake-ups.

Orphans are paused in batches, one short transaction each, so a recovery of thousands never holds the
database long enough to stall a heartbeat; one recovery at a time does it (the others, finding it busy,
leave it the orphans and do only their host's part).
"""

from __future__ import annotations

from claude_signal.celery import app
from claude_signal.core import recovery, stranded, sweep
from claude_signal.core.send_lanes import RECOVERY, exclusive
from claude_signal.core.wakeups import wake_sender
from claude_signal.wire.queues import RECOVERY_RUN
from claude_signal.worker import context as runtime
from tasks.commands import release_successors

LOCK_TTL = 60.0  # renewed after every batch; a recovery that dies frees it within this


@app.task(name=RECOVERY_RUN, bind=True)
def run(self, reason: str = "sweep") -> dict:  # type: ignore[no-untyped-def]
    settings = runtime.settings()
    with exclusive(settings.resolved_broker_url, RECOVERY, ttl=LOCK_TTL) as lock:
        done = recovery.recover_all(runtime.transaction, lock, task_id=self.request.id)
    paused, notices = done if done is not None else ([], [])
    with runtime.transaction(read_only=True) as db:
        leftovers = recovery.leftover_processes(db, settings.host)
    cleared = recovery.reap_leftovers(leftovers)
    with runtime.transaction() as db:
        refused = stranded.refuse_stranded(db, lease_ttl=settings.lease_ttl, task_id=self.request.id)
    with runtime.transaction() as db:
        for outbox_id in notices:  # sent once the whole run has written them (a notice grows across batches)
            wake_sender(db, outbox_id)
        recovery.clear_process_records(db, cleared)
        rewoken = len(sweep.due(db))
    for key in refused.keys:  # the messages that waited for a refused start or resume go on now
        release_successors(key)
    return {"reason": reason, "paused": len(paused), "reaped": len(cleared), "refused": refused.keys,
            "rewoken": rewoken, "busy": done is None}
