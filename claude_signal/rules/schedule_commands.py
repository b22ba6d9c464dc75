"""The schedule commands as typed values: ``/every``, ``/at``, ``/schedules``, ``/unschedule``, ``/pause``,
``/resume``. Pure. The times themselves are read by :mod:`claude_signal.rules.schedule_times` when the command
runs, because the shortest allowed interval is a setting.

``/resume <id>`` resumes a *schedule*; a session is resumed with ``/session resume``, and a bare ``/resume``
says so rather than guessing.
"""

from __future__ import annotations

from dataclasses import dataclass

from claude_signal.rules.schedule_times import AT_USAGE, EVERY_USAGE


class ScheduleCommand:
    """Base of every schedule command, so the dispatcher needs one ``case``."""


@dataclass(frozen=True)
class Every(ScheduleCommand):
    args: str


@dataclass(frozen=True)
class At(ScheduleCommand):
    args: str


@dataclass(frozen=True)
class ListSchedules(ScheduleCommand):
    pass


@dataclass(frozen=True)
class Unschedule(ScheduleCommand):
    ref: str


@dataclass(frozen=True)
class PauseSchedule(ScheduleCommand):
    ref: str


@dataclass(frozen=True)
class ResumeSchedule(ScheduleCommand):
    ref: str


def _ref_usage(word: str) -> str:
    hint = " To continue a session, use /session resume." if word == "resume" else ""
    return f"Usage: /{word} <schedule id>; /schedules shows the ids.{hint}"


def parse(word: str, rest: str) -> ScheduleCommand | str:
    """One schedule command from its first word and the rest; a ``str`` is the usage reply."""
    if word == "every":
        return Every(rest) if rest else EVERY_USAGE
    if word == "at":
        return At(rest) if rest else AT_USAGE
    if word == "schedules":
        return ListSchedules() if not rest else "Usage: /schedules"
    ref = rest.lower()
    if not ref or " " in ref:
        return _ref_usage(word)
    return {"unschedule": Unschedule, "pause": PauseSchedule, "resume": ResumeSchedule}[word](ref)


WORDS = ("every", "at", "schedules", "unschedule", "pause", "resume")
