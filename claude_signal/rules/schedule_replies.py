"""Every sentence about schedules. Pure functions of plain values, short enough for a phone screen."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from claude_signal.rules.replies import clip, plural

MARK = "⏰"


def moment(at: datetime | None, now: datetime, zone: ZoneInfo) -> str:
    """A time as a person reads it: 14:30 today, Tue 09:00 this week, else the date."""
    if at is None:
        return "never"
    local, today = at.astimezone(zone), now.astimezone(zone)
    if local.date() == today.date():
        return f"{local:%H:%M}"
    if local.date() == today.date() + timedelta(days=1):
        return f"tomorrow {local:%H:%M}"
    if abs((local.date() - today.date()).days) < 7:
        return f"{local:%a %H:%M}"
    return f"{local:%Y-%m-%d %H:%M}"


def created(schedule_id: str, label: str, prompt: str, next_at: str, session_id: str) -> str:
    return (f"{MARK} Scheduled {schedule_id}: {label}, next at {next_at}, in session {session_id}: "
            f"\"{clip(prompt, 80)}\". /unschedule {schedule_id} removes it.")


@dataclass(frozen=True)
class ScheduleView:
    id: str
    label: str
    prompt: str
    session_id: str
    next_at: str
    state: str  # active, paused, or why it waits
    last: str  # the last run's outcome


def listing(views: Sequence[ScheduleView], zone: str) -> str:
    if not views:
        return "No schedules. Add one with /every 30m <prompt>, /every weekdays 09:00 <prompt> or /at 18:00 <prompt>."
    lines = [f"Schedules (times in {zone}):"]
    for v in views:
        when = f"next {v.next_at}" if v.state == "active" else v.state
        lines.append(f"{v.id} · {v.label} · {when} · session {v.session_id} · last: {v.last}")
        lines.append(f"   \"{clip(v.prompt, 60)}\"")
    return "\n".join(lines)


def no_schedule(ref: str) -> str:
    return f"No schedule matches '{ref}'. /schedules shows yours."


def ambiguous(ref: str, ids: Sequence[str]) -> str:
    return f"'{ref}' matches several schedules ({', '.join(ids)}); type more of the id."


def unscheduled(schedule_id: str, label: str) -> str:
    return f"Removed schedule {schedule_id} ({label}). Turns it already queued still run; /cancel stops one."


def paused(schedule_id: str) -> str:
    return f"Paused schedule {schedule_id}. /resume {schedule_id} continues it."


def resumed(schedule_id: str, next_at: str) -> str:
    return f"Resumed schedule {schedule_id}; next run at {next_at}."


def already(schedule_id: str, state: str) -> str:
    return f"Schedule {schedule_id} is already {state}."


def finished(schedule_id: str, state: str) -> str:
    return f"Schedule {schedule_id} is {state}; make a new one with /every or /at."


def session_cannot_schedule(session_id: str, status: str) -> str:
    return f"Session {session_id} is {status.lower()}; start or resume a session first, then schedule."


def waits_for_session(schedule_id: str, label: str, session_id: str, status: str) -> str:
    """Said once when a due schedule finds its session not running prompts."""
    if status == "TERMINATED":
        return (f"{MARK} Schedule {schedule_id} ({label}) did not run: session {session_id} has stopped. It waits; "
                f"/unschedule {schedule_id} removes it.")
    return (f"{MARK} Schedule {schedule_id} ({label}) did not run: session {session_id} is {status.lower()}. It "
            f"waits and runs once when you /session resume {session_id}.")


def header(schedule_id: str, label: str, prompt: str, *, missed: int, catch_up: bool, due: str) -> str:
    """The first line of a scheduled turn's answer, so it is never mistaken for a reply to a message."""
    text = f"{MARK} Scheduled {schedule_id} ({label}): {clip(prompt, 100)}"
    if missed:
        count = f"{missed}+ runs" if missed >= 1000 else plural(missed, "run")
        text += f"\nCatch-up: {count} missed since {due} while nothing ran; this one run stands for them."
    elif catch_up:
        text += f"\nCatch-up: this was due at {due} and runs late."
    return text


def status_line(next_at: str, schedule_id: str, label: str) -> str:
    return f"Next scheduled run: {next_at} ({schedule_id}, {label})"
