"""Parsing /every and /at, and finding occurrences: the pure rules behind scheduled prompts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from claude_signal.rules.schedule_times import (
    AtSpec,
    Cron,
    ScheduleError,
    When,
    from_stored,
    missed_between,
    next_after,
    parse_at,
    parse_every,
    resolve_at,
)

BERLIN = ZoneInfo("Europe/Berlin")
UTC_ZONE = ZoneInfo("UTC")


@pytest.mark.parametrize(("text", "stored", "label", "prompt"), [
    ("30m run the tests", "interval 1800", "every 30m", "run the tests"),
    ("2h check the build", "interval 7200", "every 2h", "check the build"),
    ("1h30m x", "interval 5400", "every 1h30m", "x"),
    ("1m ping", "interval 60", "every 1m", "ping"),
    ("daily 09:00 summarise", "cron 0 9 * * *", "daily 09:00", "summarise"),
    ("weekdays 9:05 run the tests and tell me", "cron 5 9 * * 1-5", "weekdays 09:05", "run the tests and tell me"),
    ('"*/15 8-18 * * mon-fri" look', "cron */15 8-18 * * mon-fri", "cron */15 8-18 * * mon-fri", "look"),
    ("“0 9 * * 1” curly quotes from a phone", "cron 0 9 * * 1", "cron 0 9 * * 1", "curly quotes from a phone"),
])
def test_every_forms(text: str, stored: str, label: str, prompt: str) -> None:
    when, got_prompt = parse_every(text)
    assert (when.stored(), when.label, got_prompt) == (stored, label, prompt)


@pytest.mark.parametrize("text", ["59s too often", "30s x", "0m x"])
def test_one_minute_is_the_minimum(text: str) -> None:
    with pytest.raises(ScheduleError, match="too often"):
        parse_every(text)


def test_a_test_only_floor_allows_seconds() -> None:
    when, _ = parse_every("5s x", min_interval=1)
    assert when.seconds == 5


@pytest.mark.parametrize(("text", "needle"), [
    ("", "Usage: /every"),
    ("soon do it", "Usage: /every"),
    ("30m", "What should Claude do"),
    ("daily 25:00 x", "needs a time like 09:00"),
    ('"0 9 * *" x', "five fields"),
    ('"61 * * * *" x', "out of range"),
    ('"0 9 * * 1 x', "closing quote"),
    ('"a b c d e" x', "Cannot read"),
])
def test_every_mistakes_say_how(text: str, needle: str) -> None:
    with pytest.raises(ScheduleError, match=needle):
        parse_every(text)


def test_at_forms() -> None:
    assert parse_at("18:30 summarise") == (AtSpec(hour=18, minute=30), "summarise")
    assert parse_at("in 10m check") == (AtSpec(delay=600), "check")
    assert parse_at("tomorrow 08:00 plan the day") == (AtSpec(hour=8, minute=0, tomorrow=True), "plan the day")
    with pytest.raises(ScheduleError, match="too soon"):
        parse_at("in 30s x")
    with pytest.raises(ScheduleError, match="Usage: /at"):
        parse_at("noon x")


def test_at_resolves_to_the_next_such_time_in_the_zone() -> None:
    now = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # 18:00 in Berlin
    later_today = resolve_at(AtSpec(hour=18, minute=30), now, BERLIN)
    assert later_today.expr == "2026-03-02T17:30:00+00:00"
    passed = resolve_at(AtSpec(hour=17, minute=0), now, BERLIN)
    assert passed.expr == "2026-03-03T16:00:00+00:00"  # 17:00 has passed today: tomorrow
    tomorrow = resolve_at(AtSpec(hour=19, minute=0, tomorrow=True), now, BERLIN)
    assert tomorrow.expr == "2026-03-03T18:00:00+00:00"
    delay = resolve_at(AtSpec(delay=600), now, BERLIN)
    assert delay.expr == "2026-03-02T17:10:00+00:00"


def test_interval_keeps_its_rhythm_from_the_anchor() -> None:
    anchor = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    when = from_stored("interval 1800")
    assert next_after(when, anchor, anchor=anchor, zone=UTC_ZONE) == anchor + timedelta(minutes=30)
    late = anchor + timedelta(hours=5, minutes=7)
    assert next_after(when, late, anchor=anchor, zone=UTC_ZONE) == anchor + timedelta(hours=5, minutes=30)


def test_weekdays_skip_the_weekend_in_local_time() -> None:
    when, _ = parse_every("weekdays 09:00 x")
    friday_after_nine = datetime(2026, 3, 6, 9, 30, tzinfo=BERLIN)
    assert next_after(when, friday_after_nine, anchor=friday_after_nine, zone=BERLIN) == datetime(
        2026, 3, 9, 9, 0, tzinfo=BERLIN)


def test_daily_follows_daylight_saving_time() -> None:
    when, _ = parse_every("daily 09:00 x")
    before = datetime(2026, 3, 28, 10, 0, tzinfo=BERLIN)  # Berlin moves to summer time on 29 March
    first = next_after(when, before, anchor=before, zone=BERLIN)
    assert first == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)  # 09:00 CEST
    assert first is not None
    assert next_after(when, first, anchor=before, zone=BERLIN) == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)


def test_cron_day_of_month_or_weekday_like_cron() -> None:
    cron = Cron.parse("0 0 13 * 5")  # the 13th, or any Friday
    assert cron.day_matches(datetime(2026, 1, 13).date())  # a Tuesday
    assert cron.day_matches(datetime(2026, 1, 16).date())  # a Friday
    assert not cron.day_matches(datetime(2026, 1, 14).date())
    assert Cron.parse("0 0 * * 7").weekdays == frozenset({0})  # 7 is Sunday too


def test_an_impossible_date_has_no_next_run() -> None:
    when = When("cron", "0 0 30 2 *", "never")
    assert next_after(when, datetime(2026, 1, 1, tzinfo=UTC), anchor=datetime(2026, 1, 1, tzinfo=UTC),
                      zone=UTC_ZONE) is None


def test_once_has_one_occurrence() -> None:
    at = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
    when = When("once", at.isoformat(), "at 08:00")
    assert next_after(when, at - timedelta(seconds=1), anchor=at, zone=UTC_ZONE) == at
    assert next_after(when, at, anchor=at, zone=UTC_ZONE) is None


def test_missed_counts_what_an_outage_skipped() -> None:
    anchor = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    when = from_stored("interval 60")
    owed = anchor + timedelta(minutes=1)
    assert missed_between(when, owed, owed + timedelta(seconds=30), anchor=anchor, zone=UTC_ZONE) == 0
    assert missed_between(when, owed, owed + timedelta(hours=1), anchor=anchor, zone=UTC_ZONE) == 60
    assert missed_between(when, owed, owed + timedelta(days=30), anchor=anchor, zone=UTC_ZONE) == 1000
