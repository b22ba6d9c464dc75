"""``recovery.run``: on a worker's start and every few heartbeats (:func:`claude_signal.core.recovery.run`)."""

from __future__ import annotations

from claude_signal.celery import app
from claude_signal.core import recovery
from claude_signal.wire.queues import RECOVERY_RUN
from claude_signal.worker import context as runtime


@app.task(name=RECOVERY_RUN, bind=True)
def run(self, reason: str = "sweep") -> dict:  # type: ignore[no-untyped-def]
    return recovery.run(runtime.context(), self.request.id, reason)
