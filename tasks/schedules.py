"""``schedules.tick`` (sent by beat every few seconds) and ``schedules.run`` (one per due occurrence, so
Flower lists each scheduled run by name, with its schedule and occurrence as arguments)."""

from __future__ import annotations

from datetime import datetime

from claude_signal.celery import app
from claude_signal.core import schedule_runs
from claude_signal.worker import context as runtime


@app.task(name=schedule_runs.SCHEDULES_TICK)
def tick() -> int:
    with runtime.transaction() as db:
        wakeups = schedule_runs.due(db, runtime.settings())
    return len(wakeups)


@app.task(name=schedule_runs.SCHEDULES_RUN)
def run(schedule_id: str, occurrence: str) -> str:
    with runtime.transaction() as db:
        wakeups = schedule_runs.run(db, schedule_id, datetime.fromisoformat(occurrence), runtime.settings())
    return "queued" if wakeups else "nothing to do"
