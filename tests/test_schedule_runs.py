"""Schedules against the real database (SQLite and PostgreSQL): commands, exactly-once runs, catch-up, and
a waiting session said once. The clock is moved with the test-only ``schedule_clock_offset``."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, select

from claude_signal.config import Settings
from claude_signal.core import schedule_runs
from claude_signal.core.lifecycle import transition
from claude_signal.db.engine import unit_of_work
from claude_signal.db.models import Outbox, Schedule, Turn
from claude_signal.rules.states import ScheduleStatus, SessionStatus
from tests.test_handling import handle, live_worker, msg, replies_to, start_session

__all__ = ["live_worker"]


def command(engine: Engine, settings: Settings, text: str) -> str:
    m = msg(text)
    handle(engine, settings, m)
    (reply,) = replies_to(engine, m)
    return reply


def create(engine: Engine, settings: Settings, text: str) -> str:
    reply = command(engine, settings, text)
    match = re.match(r"⏰ Scheduled ([0-9a-f]+): ", reply)
    assert match, reply
    return match[1]


def later(settings: Settings, seconds: float) -> Settings:
    return settings.model_copy(update={"schedule_clock_offset": seconds})


def tick(engine: Engine, settings: Settings) -> list[tuple[str, datetime]]:
    with unit_of_work(engine) as db:
        wakeups = schedule_runs.due(db, settings)
    return [(w.args[0], datetime.fromisoformat(w.args[1])) for w in wakeups]


def run_due(engine: Engine, settings: Settings) -> int:
    """Run every due occurrence twice, as two beats would; returns how many turns that queued."""
    before = len(turns(engine))
    for schedule_id, occurrence in tick(engine, settings) * 2:
        with unit_of_work(engine) as db:
            schedule_runs.run(db, schedule_id, occurrence, settings)
    return len(turns(engine)) - before


def turns(engine: Engine) -> list[Turn]:
    with unit_of_work(engine) as db:
        return list(db.execute(select(Turn).order_by(Turn.id)).scalars())


def texts(engine: Engine) -> list[str]:
    with unit_of_work(engine) as db:
        return list(db.execute(select(Outbox.text).order_by(Outbox.id)).scalars())


def test_each_occurrence_runs_once_and_marks_its_answer(engine: Engine, settings: Settings,
                                                         project_root: Path) -> None:
    start_session(engine, settings, project_root / "shop")
    sid = create(engine, settings, "/every 30m run the tests")
    assert run_due(engine, settings) == 0  # not due yet
    assert run_due(engine, later(settings, 30 * 60 + 1)) == 1
    assert run_due(engine, later(settings, 30 * 60 + 2)) == 0  # the same occurrence again: nothing
    assert run_due(engine, later(settings, 60 * 60 + 1)) == 1
    assert [t.prompt for t in turns(engine)] == ["run the tests"] * 2
    with unit_of_work(engine) as db:
        header = schedule_runs.header(db, turns(engine)[0].id)
    assert header == f"⏰ Scheduled {sid} (every 30m): run the tests"


def test_an_outage_makes_one_catch_up_run_then_the_rhythm(engine: Engine, settings: Settings,
                                                           project_root: Path) -> None:
    start_session(engine, settings, project_root / "shop")
    create(engine, settings, "/every 1m ping")
    assert run_due(engine, later(settings, 3600 + 30)) == 1
    with unit_of_work(engine) as db:
        header = schedule_runs.header(db, turns(engine)[0].id)
    assert header is not None and "Catch-up: 59 runs missed" in header
    assert run_due(engine, later(settings, 3600 + 31)) == 0  # not every missed minute
    assert run_due(engine, later(settings, 3600 + 61)) == 1
    with unit_of_work(engine) as db:
        assert "Catch-up" not in (schedule_runs.header(db, turns(engine)[1].id) or "")


def test_at_runs_once_and_is_done(engine: Engine, settings: Settings, project_root: Path) -> None:
    start_session(engine, settings, project_root / "shop")
    sid = create(engine, settings, "/at in 10m hello")
    assert run_due(engine, later(settings, 601)) == 1
    assert run_due(engine, later(settings, 6000)) == 0
    with unit_of_work(engine) as db:
        assert db.get(Schedule, sid).status == ScheduleStatus.DONE  # type: ignore[union-attr]
    assert "No schedules" in command(engine, settings, "/schedules")


def test_a_paused_session_is_said_once_and_waits(engine: Engine, settings: Settings, project_root: Path) -> None:
    session_id = start_session(engine, settings, project_root / "shop")
    sid = create(engine, settings, "/every 1m check")
    with unit_of_work(engine) as db:
        transition(db, session_id, SessionStatus.PAUSED, reason="test")
    for minutes in (2, 3, 4):
        assert run_due(engine, later(settings, minutes * 60 + 1)) == 0
    notes = [t for t in texts(engine) if t.startswith(f"⏰ Schedule {sid} (every 1m) did not run")]
    assert len(notes) == 1 and f"/session resume {session_id}" in notes[0]
    assert "waits: session paused" in command(engine, settings, "/schedules")
    with unit_of_work(engine) as db:
        transition(db, session_id, SessionStatus.ACTIVE, reason="test")
    assert run_due(engine, later(settings, 5 * 60 + 1)) == 1  # one catch-up run, not four


def test_pause_resume_unschedule_and_status(engine: Engine, settings: Settings, project_root: Path) -> None:
    start_session(engine, settings, project_root / "shop")
    sid = create(engine, settings, "/every weekdays 09:00 run the tests")
    assert "Next scheduled run: " in command(engine, settings, "/status")
    assert command(engine, settings, f"/pause {sid[:3]}") == f"Paused schedule {sid}. /resume {sid} continues it."
    assert run_due(engine, later(settings, 8 * 86400)) == 0
    assert "Next scheduled run" not in command(engine, settings, "/status")
    assert command(engine, settings, f"/resume {sid}").startswith(f"Resumed schedule {sid}; next run at ")
    assert command(engine, settings, f"/unschedule {sid}").startswith(f"Removed schedule {sid}")
    assert command(engine, settings, f"/unschedule {sid}").startswith(f"Schedule {sid} is cancelled")
    assert command(engine, settings, "/resume").startswith("Usage: /resume <schedule id>")
    assert "too often" in command(engine, settings, "/every 30s x")
    assert command(engine, settings, "/every").startswith("Usage: /every")
