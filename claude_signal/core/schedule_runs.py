"""Running schedules: beat's tick finds what is due, and each due occurrence becomes one queued turn.

Exactly once: a run row keyed by schedule and occurrence is inserted-or-ignored, and only the inserter
queues the turn, so two beats, two ticks or a redelivered task add nothing. The owed occurrence
(``next_run_at``) moves on only with a run, to the first occurrence after *now*: an outage leaves it in the
past, and the next tick makes one catch-up run for all that was missed, then the normal rhythm goes on.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as DB

from claude_signal.config import Settings
from claude_signal.core import outbox
from claude_signal.core.schedules import clock
from claude_signal.core.wakeups import Wakeup, Wakeups, next_turn, pending, wake, wake_sender
from claude_signal.db.models import Schedule, ScheduleRun, Session, Turn, utcnow
from claude_signal.host.timezone import zone
from claude_signal.rules import schedule_replies as say
from claude_signal.rules import schedule_times as rules
from claude_signal.rules.states import ScheduleStatus, SessionStatus, TurnStatus
from claude_signal.wire.queues import SHARED_QUEUE

SCHEDULES_TICK = "schedules.tick"
SCHEDULES_RUN = "schedules.run"
BATCH = 200


def late_after(settings: Settings) -> float:
    """A run later than this (seconds) is a catch-up even when no other occurrence was missed."""
    return max(120.0, 4 * settings.schedule_tick)


def due(db: DB, settings: Settings) -> Wakeups:
    """One ``schedules.run`` per due occurrence. A schedule already told that its session cannot run
    prompts is left alone until the session's state changes."""
    now = clock(db, settings)
    rows = db.execute(
        select(Schedule.id, Schedule.next_run_at).join(Session, Session.id == Schedule.session_id)
        .where(Schedule.status == ScheduleStatus.ACTIVE, Schedule.next_run_at <= now,
               or_(Session.status == SessionStatus.ACTIVE, Schedule.blocked_status.is_(None),
                   Schedule.blocked_status != Session.status))
        .order_by(Schedule.next_run_at).limit(BATCH)
    ).all()
    wakeups = pending(db)
    for schedule_id, occurrence in rows:
        key = run_key(schedule_id, occurrence)
        wake(db, Wakeup(SCHEDULES_RUN, (schedule_id, occurrence.isoformat()), queue=SHARED_QUEUE,
                           task_id=f"schedule:{key}"))
    return wakeups


def run_key(schedule_id: str, occurrence: datetime) -> str:
    return f"{schedule_id}@{occurrence.isoformat()}"


def run(db: DB, schedule_id: str, occurrence: datetime, settings: Settings) -> Wakeups:
    """Queue the turn for one occurrence, unless it exists or is no longer owed."""
    wakeups = pending(db)
    schedule = db.get(Schedule, schedule_id, populate_existing=True)
    if schedule is None or schedule.status != ScheduleStatus.ACTIVE or schedule.next_run_at != occurrence:
        return wakeups  # done by another worker, paused, removed, or moved on
    session = db.get(Session, schedule.session_id, populate_existing=True)
    assert session is not None
    if session.status != SessionStatus.ACTIVE:
        if session.status != SessionStatus.CREATED:  # a session still starting is waited for silently
            _tell_blocked_once(db, schedule, session, occurrence)
        return wakeups
    now = clock(db, settings)
    when = rules.from_stored(schedule.spec)
    tz = zone(schedule.timezone)
    missed = rules.missed_between(when, occurrence, now, anchor=schedule.anchor_at, zone=tz)
    catch_up = missed > 0 or (now - occurrence).total_seconds() > late_after(settings)
    key = run_key(schedule.id, occurrence)
    if not _claim_occurrence(db, {"key": key, "schedule_id": schedule.id, "occurrence_at": occurrence,
                                  "missed": missed, "catch_up": catch_up, "created_at": utcnow()}):
        return wakeups  # another worker (another beat's tick) ran this occurrence
    turn = Turn(session_id=session.id, inbound_key=f"schedule:{key}", prompt=schedule.prompt,
                status=TurnStatus.QUEUED, created_at=utcnow())
    db.add(turn)
    db.flush()
    db.execute(update(ScheduleRun).where(ScheduleRun.key == key).values(turn_id=turn.id)
               .execution_options(synchronize_session=False))
    following = rules.next_after(when, now, anchor=schedule.anchor_at, zone=tz)
    db.execute(update(Schedule).where(Schedule.id == schedule.id, Schedule.next_run_at == occurrence)
               .values(next_run_at=following, last_run_at=now, blocked_status=None, updated_at=utcnow(),
                       status=ScheduleStatus.ACTIVE if following else ScheduleStatus.DONE)
               .execution_options(synchronize_session=False))
    wake(db, next_turn(session.id, session.host))
    return wakeups


def _claim_occurrence(db: DB, values: dict[str, object]) -> bool:
    """Insert the run row unless it exists; True when this call inserted it. Judged by RETURNING, not by
    the row count, which PostgreSQL's driver does not always report for this statement."""
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(ScheduleRun).values(**values).on_conflict_do_nothing(index_elements=["key"])
    return db.execute(stmt.returning(ScheduleRun.key)).first() is not None


def _tell_blocked_once(db: DB, schedule: Schedule, session: Session,
                       occurrence: datetime) -> None:
    """Say once that the schedule waits for its session; it keeps owing the occurrence, so resuming the
    session brings one catch-up run."""
    won = db.execute(update(Schedule).where(Schedule.id == schedule.id,
                                            or_(Schedule.blocked_status.is_(None),
                                                Schedule.blocked_status != session.status))
                     .values(blocked_status=session.status, updated_at=utcnow())
                     .execution_options(synchronize_session=False)).rowcount
    if won:
        text = say.waits_for_session(schedule.id, schedule.label, session.id, session.status)
        wake_sender(db, outbox.enqueue(db, recipient=session.conversation, text=text,
                                          dedupe_key=f"schedule:{schedule.id}:waits:{session.status}:"
                                                     f"{occurrence.isoformat()}"))


def header(db: DB, turn_id: int) -> str | None:
    """The line that marks a scheduled turn's answer; None for a turn someone typed."""
    row = db.execute(select(ScheduleRun, Schedule).join(Schedule, Schedule.id == ScheduleRun.schedule_id)
                     .where(ScheduleRun.turn_id == turn_id)).first()
    if row is None:
        return None
    run_row, schedule = row
    tz = zone(schedule.timezone)
    due_text = say.moment(run_row.occurrence_at, run_row.created_at, tz)
    return say.header(schedule.id, schedule.label, schedule.prompt, missed=run_row.missed,
                      catch_up=run_row.catch_up, due=due_text)


def announce(db: DB, turn_id: int, conversation: str) -> None:
    """Before a scheduled turn's answer: queue its header in the turn's conversation."""
    text = header(db, turn_id)
    if text is not None:
        wake_sender(db, outbox.enqueue(db, recipient=conversation, text=text, dedupe_key=f"turn:{turn_id}:scheduled"))
