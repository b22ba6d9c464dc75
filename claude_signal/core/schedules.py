"""The schedule commands' domain: create, list, pause, resume and remove schedules, in the caller's
transaction. Running them is :mod:`claude_signal.core.schedule_runs`.

Times are judged by :func:`clock`: the database's clock (the one truth every beat and worker shares), plus
a test-only offset that lets a test stand an hour later without waiting for it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import Executable, bindparam, select, update
from sqlalchemy.orm import Session as DB

from claude_signal.config import Settings
from claude_signal.db.clock import db_now
from claude_signal.db.models import Schedule, ScheduleRun, Session, Turn, utcnow
from claude_signal.host.timezone import zone
from claude_signal.rules import schedule_replies as say
from claude_signal.rules import schedule_times as rules
from claude_signal.rules.schedule_commands import (
    At,
    Every,
    ListSchedules,
    PauseSchedule,
    ResumeSchedule,
    ScheduleCommand,
    Unschedule,
)
from claude_signal.rules.states import ScheduleStatus, SessionStatus
from claude_signal.wire.inbound import InboundMessage

LIVE = (ScheduleStatus.ACTIVE, ScheduleStatus.PAUSED)


class Refused(Exception):
    """The command cannot be done; the message is the reply."""


def clock(db: DB, settings: Settings) -> datetime:
    return db_now(db) + timedelta(seconds=settings.schedule_clock_offset)


def run_command(db: DB, msg: InboundMessage, command: ScheduleCommand, settings: Settings) -> str:
    """Do one schedule command and return its one reply."""
    try:
        match command:
            case Every(args):
                when, prompt = rules.parse_every(args, min_interval=settings.schedule_min_interval)
                return _create(db, msg, when, prompt, settings)
            case At(args):
                spec, prompt = rules.parse_at(args, min_interval=settings.schedule_min_interval)
                when = rules.resolve_at(spec, clock(db, settings), zone(settings.timezone))
                return _create(db, msg, when, prompt, settings)
            case ListSchedules():
                return list_sessions(db, msg, settings)
            case Unschedule(ref):
                return _unschedule(db, msg, ref)
            case PauseSchedule(ref):
                return _pause(db, msg, ref)
            case ResumeSchedule(ref):
                return resume(db, msg, ref, settings)
    except (rules.ScheduleError, Refused) as why:
        return str(why)
    raise TypeError(command)


def _create(db: DB, msg: InboundMessage, when: rules.When, prompt: str, settings: Settings) -> str:
    from claude_signal.core.conversation import current_session

    session = current_session(db, msg.conversation)
    if session is None:
        from claude_signal.rules.replies import no_current_session

        raise Refused(no_current_session())
    if session.status == SessionStatus.TERMINATED:
        raise Refused(say.session_cannot_schedule(session.id, session.status))
    now = clock(db, settings)
    tz = zone(settings.timezone)
    first = rules.next_after(when, now, anchor=now, zone=tz)
    if first is None:
        raise Refused("That time never comes; check the cron expression.")
    schedule = Schedule(
        id=_new_id(db), session_id=session.id, owner=msg.sender, conversation=msg.conversation,
        spec=when.stored(), label=when.label, prompt=prompt, timezone=settings.timezone,
        status=ScheduleStatus.ACTIVE, anchor_at=now, next_run_at=first, origin_key=msg.key,
        created_at=utcnow(), updated_at=utcnow(),
    )
    db.add(schedule)
    db.flush()
    return say.created(schedule.id, when.label, prompt, say.moment(first, now, tz), session.id)


def _new_id(db: DB) -> str:
    import secrets

    while True:
        candidate = secrets.token_hex(3)
        if db.get(Schedule, candidate) is None:
            return candidate


def visible(msg: InboundMessage):  # type: ignore[no-untyped-def]
    """Schedules this person may see and change: their own, and those of this conversation."""
    return select(Schedule).where((Schedule.owner == msg.sender) | (Schedule.conversation == msg.conversation))


def find(db: DB, msg: InboundMessage, ref: str) -> Schedule:
    """Exact id, or a unique prefix of a live one."""
    exact = db.execute(visible(msg).where(Schedule.id == ref)).scalar_one_or_none()
    if exact is not None:
        return exact
    matches = db.execute(visible(msg).where(Schedule.id.startswith(ref, autoescape=True),
                                            Schedule.status.in_(LIVE)).limit(6)).scalars().all()
    if not matches:
        raise Refused(say.no_schedule(ref))
    if len(matches) > 1:
        raise Refused(say.ambiguous(ref, [s.id for s in matches]))
    return matches[0]


def list_sessions(db: DB, msg: InboundMessage, settings: Settings) -> str:
    now = clock(db, settings)
    rows = db.execute(visible(msg).where(Schedule.status.in_(LIVE)).order_by(Schedule.created_at)
                      .limit(30)).scalars().all()
    views = []
    for s in rows:
        tz = zone(s.timezone)
        views.append(say.ScheduleView(id=s.id, label=s.label, prompt=s.prompt, session_id=s.session_id,
                                      next_at=say.moment(s.next_run_at, now, tz), state=_state(db, s),
                                      last=_last_outcome(db, s.id)))
    return say.listing(views, settings.timezone)


def _state(db: DB, schedule: Schedule) -> str:
    if schedule.status == ScheduleStatus.PAUSED:
        return f"paused (/resume {schedule.id})"
    status = db.execute(select(Session.status).where(Session.id == schedule.session_id)).scalar_one()
    if status in (SessionStatus.PAUSED, SessionStatus.TERMINATED):
        return "waits: session " + ("stopped" if status == SessionStatus.TERMINATED else "paused")
    return "active"


def _last_outcome(db: DB, schedule_id: str) -> str:
    status = db.execute(select(Turn.status).join(ScheduleRun, ScheduleRun.turn_id == Turn.id)
                        .where(ScheduleRun.schedule_id == schedule_id)
                        .order_by(ScheduleRun.occurrence_at.desc()).limit(1)).scalar_one_or_none()
    return status.lower() if status else "not run yet"


def _set_status(db: DB, schedule: Schedule, status: ScheduleStatus, **values: object) -> bool:
    return db.execute(update(Schedule).where(Schedule.id == schedule.id, Schedule.status == schedule.status)
                      .values(status=status, updated_at=utcnow(), **values)
                      .execution_options(synchronize_session=False)).rowcount == 1


def _unschedule(db: DB, msg: InboundMessage, ref: str) -> str:
    schedule = find(db, msg, ref)
    if schedule.status not in LIVE:
        raise Refused(say.finished(schedule.id, schedule.status.lower()))
    _set_status(db, schedule, ScheduleStatus.CANCELLED, next_run_at=None)
    return say.unscheduled(schedule.id, schedule.label)


def _pause(db: DB, msg: InboundMessage, ref: str) -> str:
    schedule = find(db, msg, ref)
    if schedule.status == ScheduleStatus.PAUSED:
        raise Refused(say.already(schedule.id, "paused"))
    if schedule.status != ScheduleStatus.ACTIVE:
        raise Refused(say.finished(schedule.id, schedule.status.lower()))
    _set_status(db, schedule, ScheduleStatus.PAUSED)
    return say.paused(schedule.id)


def resume(db: DB, msg: InboundMessage, ref: str, settings: Settings) -> str:
    """A schedule the user paused continues from now on: what fell in the pause was skipped on purpose."""
    schedule = find(db, msg, ref)
    if schedule.status == ScheduleStatus.ACTIVE:
        raise Refused(say.already(schedule.id, "running"))
    if schedule.status != ScheduleStatus.PAUSED:
        raise Refused(say.finished(schedule.id, schedule.status.lower()))
    now = clock(db, settings)
    tz = zone(schedule.timezone)
    when = rules.from_stored(schedule.spec)
    following = rules.next_after(when, now, anchor=schedule.anchor_at, zone=tz)
    if when.kind == "once" and following is None:
        following = now  # an /at whose moment passed during the pause runs now
    _set_status(db, schedule, ScheduleStatus.ACTIVE, next_run_at=following)
    return say.resumed(schedule.id, say.moment(following, now, tz))


@cache
def _next_scheduled() -> Executable:  # built once: every /status asks
    return (select(Schedule).where(Schedule.session_id == bindparam("s"), Schedule.status == ScheduleStatus.ACTIVE,
                                   Schedule.next_run_at.is_not(None))
            .order_by(Schedule.next_run_at).limit(1))


def next_run_line(db: DB, session_id: str, settings: Settings) -> str | None:
    """For /status: the session's next scheduled run, or None."""
    schedule = db.execute(_next_scheduled(), {"s": session_id}).scalar_one_or_none()
    if schedule is None:
        return None
    now = clock(db, settings)
    return say.status_line(say.moment(schedule.next_run_at, now, zone(schedule.timezone)), schedule.id,
                           schedule.label)
