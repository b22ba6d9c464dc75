"""When a schedule runs: parsing what the user typed and finding the next occurrence. Pure: no I/O.

A schedule is stored as a :class:`When` whose ``expr`` is canonical text (``interval 1800``,
``cron 0 9 * * 1-5``, ``once <iso utc>``), so every beat and worker computes the same occurrences from
the same row. Cron fields are evaluated in the schedule's own time zone; intervals count from the
schedule's anchor, so a restart never shifts the rhythm.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

MIN_INTERVAL = 60.0  # the user-facing floor: nothing runs more often than once a minute
MAX_MISSED_COUNTED = 1000  # beyond this a catch-up note says "1000+"


class ScheduleError(ValueError):
    """What the user typed is not a time we understand; the message says how to type it."""


@dataclass(frozen=True)
class When:
    """A parsed ``/every`` or ``/at`` time: ``kind`` is interval, cron or once."""

    kind: str
    expr: str  # canonical: seconds for interval, five fields for cron, ISO UTC for once
    label: str  # what the user sees in lists, e.g. "every 30m", "weekdays 09:00"

    @property
    def seconds(self) -> float:
        return float(self.expr) if self.kind == "interval" else 0.0

    def stored(self) -> str:
        return f"{self.kind} {self.expr}"


def from_stored(text: str, label: str = "") -> When:
    kind, _, expr = text.partition(" ")
    return When(kind, expr, label or text)


# --------------------------------------------------------------------------------- /every parsing

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?:in)?)?(?:(\d+)s)?$")
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_QUOTES = "\"'“”‘’«»"  # phones turn straight quotes into curly ones


def parse_duration(text: str) -> float | None:
    """``30m``, ``2h``, ``1h30m``, ``90s``, ``1d`` → seconds; None when it is not a duration."""
    match = _DURATION.match(text.strip().lower())
    if not match or not any(match.groups()):
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return float(days * 86400 + hours * 3600 + minutes * 60 + seconds)


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def parse_every(text: str, *, min_interval: float = MIN_INTERVAL) -> tuple[When, str]:
    """``/every``'s arguments → (when, prompt). Raises :class:`ScheduleError` with a usage line."""
    text = text.strip()
    if not text:
        raise ScheduleError(EVERY_USAGE)
    if text[0] in _QUOTES:
        return _quoted_cron(text)
    first, _, rest = text.partition(" ")
    word = first.lower()
    if word in ("daily", "weekdays", "weekends"):
        clock, _, prompt = rest.strip().partition(" ")
        match = _CLOCK.match(clock)
        if not match:
            raise ScheduleError(f"/every {word} needs a time like 09:00, e.g. /every {word} 09:00 run the tests")
        days = {"daily": "*", "weekdays": "1-5", "weekends": "0,6"}[word]
        hour, minute = int(match[1]), int(match[2])
        when = When("cron", f"{minute} {hour} * * {days}", f"{word} {hour:02d}:{minute:02d}")
        return when, _prompt(prompt)
    seconds = parse_duration(word)
    if seconds is None:
        raise ScheduleError(EVERY_USAGE)
    if seconds < min_interval:
        raise ScheduleError(f"{first} is too often: the shortest interval is {format_duration(min_interval)}.")
    return When("interval", str(int(seconds)), f"every {format_duration(seconds)}"), _prompt(rest)


def _quoted_cron(text: str) -> tuple[When, str]:
    end = next((i for i in range(1, len(text)) if text[i] in _QUOTES), -1)
    if end < 0:
        raise ScheduleError("A cron expression needs a closing quote, e.g. /every \"0 9 * * 1-5\" run the tests")
    expr = " ".join(text[1:end].split())
    Cron.parse(expr)  # raises ScheduleError when it is not a valid five-field expression
    return When("cron", expr, f"cron {expr}"), _prompt(text[end + 1:])


def _prompt(text: str) -> str:
    prompt = text.strip()
    if not prompt:
        raise ScheduleError("What should Claude do then? Put the prompt after the time, e.g. "
                            "/every 2h check the build")
    return prompt


EVERY_USAGE = ("Usage: /every <when> <prompt>, where <when> is 30m, 2h, daily 09:00, weekdays 09:00 or a "
               "quoted cron expression like \"0 9 * * 1-5\". Example: /every weekdays 09:00 run the tests")
AT_USAGE = ("Usage: /at <HH:MM | in 10m | tomorrow 08:00> <prompt>. Example: /at 18:30 summarise today's "
            "commits")


# ------------------------------------------------------------------------------------ /at parsing


@dataclass(frozen=True)
class AtSpec:
    """An ``/at`` time before it meets the clock: after ``delay`` seconds, or at ``hour:minute`` (tomorrow
    when ``tomorrow``, else the next time the clock shows it)."""

    delay: float | None = None
    hour: int = 0
    minute: int = 0
    tomorrow: bool = False


def parse_at(text: str, *, min_interval: float = MIN_INTERVAL) -> tuple[AtSpec, str]:
    words = text.strip().split(" ", 1)
    first = words[0].lower()
    rest = words[1] if len(words) > 1 else ""
    if first == "in":
        amount, _, prompt = rest.strip().partition(" ")
        seconds = parse_duration(amount)
        if seconds is None:
            raise ScheduleError(AT_USAGE)
        if seconds < min_interval:
            raise ScheduleError(f"in {amount} is too soon: the shortest delay is {format_duration(min_interval)}.")
        return AtSpec(delay=seconds), _prompt(prompt)
    tomorrow = first == "tomorrow"
    if tomorrow:
        first, _, rest = rest.strip().partition(" ")
    match = _CLOCK.match(first)
    if not match:
        raise ScheduleError(AT_USAGE)
    return AtSpec(hour=int(match[1]), minute=int(match[2]), tomorrow=tomorrow), _prompt(rest)


def resolve_at(spec: AtSpec, now: datetime, zone: ZoneInfo) -> When:
    """The one moment an ``/at`` means, seen from ``now``."""
    if spec.delay is not None:
        at = now + timedelta(seconds=spec.delay)
        label = f"at {at.astimezone(zone):%H:%M}"
    else:
        local = now.astimezone(zone)
        day = local.date() + timedelta(days=1 if spec.tomorrow else 0)
        at = _local(day, spec.hour, spec.minute, zone)
        if at <= now:
            at = _local(day + timedelta(days=1), spec.hour, spec.minute, zone)
        label = f"at {spec.hour:02d}:{spec.minute:02d}" + (" tomorrow" if spec.tomorrow else "")
    return When("once", at.astimezone(UTC).isoformat(), label)


# -------------------------------------------------------------------------------------------- cron

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NAMES = {3: {m: i + 1 for i, m in enumerate(_MONTHS)}, 4: {d: i for i, d in enumerate(_WEEKDAYS)}}
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


@dataclass(frozen=True)
class Cron:
    """A five-field cron expression: minute hour day-of-month month day-of-week (0 or 7 is Sunday)."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_any: bool
    weekdays_any: bool

    @classmethod
    def parse(cls, expr: str) -> Cron:
        fields = expr.split()
        if len(fields) != 5:
            raise ScheduleError(f"A cron expression has five fields (minute hour day month weekday), not "
                                f"{len(fields)}: \"{expr}\"")
        sets = [_field(f, i) for i, f in enumerate(fields)]
        weekdays = frozenset(0 if d == 7 else d for d in sets[4])
        return cls(tuple(sorted(sets[0])), tuple(sorted(sets[1])), frozenset(sets[2]), frozenset(sets[3]),
                   weekdays, fields[2] == "*", fields[4] == "*")

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.days_any or self.weekdays_any:
            return in_month and in_week  # the unrestricted one matches every day anyway
        return in_month or in_week  # classic cron: either restriction is enough

    def next_after(self, after: datetime, zone: ZoneInfo) -> datetime | None:
        """The first matching minute strictly after ``after`` (aware), or None within eight years."""
        local = after.astimezone(zone)
        day = local.date()
        for _ in range(366 * 8):
            if self.day_matches(day):
                for hour in self.hours:
                    for minute in self.minutes:
                        candidate = _local(day, hour, minute, zone)
                        if candidate > after:
                            return candidate.astimezone(UTC)
            day += timedelta(days=1)
        return None


def _field(text: str, index: int) -> set[int]:
    low, high = _BOUNDS[index]
    values: set[int] = set()
    for part in text.lower().split(","):
        base, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if base == "*":
                start, end = low, high
            elif "-" in base:
                a, b = base.split("-", 1)
                start, end = _value(a, index), _value(b, index)
            else:
                start = _value(base, index)
                end = high if step_text else start
        except ValueError:
            raise ScheduleError(f"Cannot read \"{part}\" in a cron expression.") from None
        if step < 1 or not (low <= start <= end <= high):
            raise ScheduleError(f"\"{part}\" is out of range ({low}-{high}) in a cron expression.")
        values.update(range(start, end + 1, step))
    return values


def _value(text: str, index: int) -> int:
    names = _NAMES.get(index, {})
    return names[text] if text in names else int(text)


def _local(day: date, hour: int, minute: int, zone: ZoneInfo) -> datetime:
    """Wall-clock time in ``zone``; a time skipped by a DST change is taken as the same offset as before."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)


# ------------------------------------------------------------------------------------ occurrences


def next_after(when: When, after: datetime, *, anchor: datetime, zone: ZoneInfo) -> datetime | None:
    """The first occurrence strictly after ``after``; None when there is none (a past ``/at``)."""
    if when.kind == "interval":
        period = timedelta(seconds=when.seconds)
        if after < anchor:
            return anchor
        steps = (after - anchor) // period + 1
        return anchor + steps * period
    if when.kind == "cron":
        return Cron.parse(when.expr).next_after(after, zone)
    at = datetime.fromisoformat(when.expr)
    return at if at > after else None


def missed_between(when: When, occurrence: datetime, now: datetime, *, anchor: datetime,
                   zone: ZoneInfo) -> int:
    """How many further occurrences fell after ``occurrence`` up to ``now`` (capped): the runs an outage
    skipped, which a catch-up run stands in for."""
    count = 0
    current: datetime | None = occurrence
    while count < MAX_MISSED_COUNTED:
        current = next_after(when, current, anchor=anchor, zone=zone) if current else None
        if current is None or current > now:
            break
        count += 1
    return count
